import { type ConnectionOptions, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';

type Interceptor = NonNullable<ConnectionOptions['interceptors']>[number];

/**
 * How long one call to Temporal may take, retries included, when the caller set no deadline of its
 * own. Without it a call made while the server is down retries for about 20 s, and a call that waits
 * for a worker (a query, an update) waits as long as the worker is gone: the request that made it
 * would hang instead of being told to come back (the gateway answers 503 with Retry-After).
 */
export const TEMPORAL_CALL_DEADLINE_MS = 10_000;

/**
 * Calls that wait on purpose (a workflow's result, an update's outcome): the server answers them when
 * there is something to say or at its own long-poll limit, so a short deadline would only break them.
 */
const LONG_POLLS = new Set(['GetWorkflowExecutionHistory', 'PollWorkflowExecutionUpdate']);

/**
 * An update (an approval, a rejection) is answered once a worker has run the workflow task that
 * takes it; a busy worker (first tasks of many large investigations on two cores took 7–10 s each in
 * CI) needs longer than a plain call, while a worker that is gone must still end in a 503.
 */
const SLOWER_CALLS = new Map([['UpdateWorkflowExecution', 3]]);

type Call = ReturnType<Interceptor>;

function deadlineInterceptor(limitMs: number): Interceptor {
  // grpc-js types an interceptor as answering its InterceptingCall class, but uses only the call's
  // interface, which is what the next call in the chain answers: passing it on needs no wrapper.
  return (options, nextCall) => {
    const method = options.method_definition.path.split('/').pop() ?? '';
    if (options.deadline !== undefined || LONG_POLLS.has(method)) return nextCall(options) as Call;
    // Set outside the retry interceptor, so every retry shares the one deadline.
    return nextCall({ ...options, deadline: Date.now() + limitMs * (SLOWER_CALLS.get(method) ?? 1) }) as Call;
  };
}

/** gRPC's CANCELLED: not a code the SDK's retry interceptor retries. */
const CANCELLED = 1;

/**
 * The innermost interceptor: a call begun on a connection that is already closed ends as CANCELLED
 * instead of throwing. The SDK's retry interceptor begins each retry from a timer; one that comes due
 * after the connection was closed (a process stopping while a call to a restarting server waited to be
 * retried) threw "Channel has been shut down" from that timer, where nothing can catch it, and took
 * the process down (or, in the tests, whichever suite was running then).
 */
function closedConnectionInterceptor(): Interceptor {
  return (options, nextCall) => {
    try {
      return nextCall(options) as Call;
    } catch (error) {
      const message = (error as Error | undefined)?.message ?? '';
      if (!/channel has been shut down/i.test(message)) throw error;
      return endedCall(`the connection to Temporal was closed before this call could be made (${message})`);
    }
  };
}

/** A call that ends, once started, with CANCELLED and `details`: what grpc-js's interface asks of a call, and nothing sent. */
function endedCall(details: string): Call {
  const call = {
    start(metadata: { clone(): unknown }, listener?: { onReceiveStatus?(status: unknown): void }) {
      setImmediate(() => listener?.onReceiveStatus?.({ code: CANCELLED, details, metadata: metadata.clone() }));
    },
    sendMessageWithContext(context: { callback?: () => void }) {
      context.callback?.();
    },
    sendMessage() {},
    startRead() {},
    halfClose() {},
    cancelWithStatus() {},
    getPeer: () => '',
    getAuthContext: () => null,
  };
  return call as unknown as Call;
}

/** The client connection's interceptors: the deadline above, then the SDK's own retries, each made only while the connection is open. */
export function temporalClientInterceptors(limitMs = TEMPORAL_CALL_DEADLINE_MS): Interceptor[] {
  return [deadlineInterceptor(limitMs), makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), closedConnectionInterceptor()];
}
