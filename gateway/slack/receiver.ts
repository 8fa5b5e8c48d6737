import type { App, Receiver, ReceiverEvent } from '@slack/bolt';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../infra/log';
import { ApiError, badRequest } from '../errors';
import { verifySlackSignature } from './signature';

export interface FastifyReceiverOptions {
  signingSecret: string;
  log: Logger;
  /** Answer Slack by then even if no listener acknowledged: Slack gives up (and retries) at 3 s. */
  ackDeadlineMs?: number;
  now?: () => number;
}

export const SLACK_EVENTS_PATH = '/slack/events';

const FORM = 'application/x-www-form-urlencoded';

/**
 * Bolt's receiver on the gateway's own fastify server, so Slack shares the gateway's port, error
 * shape, audit and metrics instead of opening an Express server beside it. It verifies Slack's
 * signature over the raw body, parses the three shapes Slack sends (events as JSON, slash commands
 * as a form, interactive payloads as a form field holding JSON), hands the body to Bolt, and answers
 * as soon as a listener acks; the listener's work goes on after the answer.
 */
export class FastifyReceiver implements Receiver {
  private bolt?: App;
  private readonly deadlineMs: number;

  constructor(private readonly options: FastifyReceiverOptions) {
    this.deadlineMs = options.ackDeadlineMs ?? 2_500;
  }

  init(app: App): void {
    this.bolt = app;
  }

  /** The gateway listens; there is nothing of the receiver's own to start or stop. */
  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  /** The route, as an encapsulated plugin: its raw-body parsers do not reach the gateway's other routes. */
  readonly routes = async (app: FastifyInstance): Promise<void> => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(['application/json', FORM], { parseAs: 'string' }, (_request, body, done) => done(null, body));
    // Slack's servers are few addresses shared by every workspace; a per-address limit would drop its
    // deliveries at busy times, while a forged request costs one HMAC to refuse.
    app.post(SLACK_EVENTS_PATH, { schema: { hide: true }, config: { rateLimit: false } }, (request, reply) => this.handle(request, reply));
  };

  private async handle(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const raw = typeof request.body === 'string' ? request.body : '';
    const check = verifySlackSignature(this.options.signingSecret, {
      timestamp: header(request, 'x-slack-request-timestamp'),
      signature: header(request, 'x-slack-signature'),
    }, raw, this.options.now?.());
    if (!check.ok) {
      this.options.log.warn(`slack: refused a request from ${request.ip}: ${check.reason}`);
      throw new ApiError(401, 'unauthorized', `this is not a request signed by Slack: ${check.reason}`);
    }
    const body = parseBody(raw, String(request.headers['content-type'] ?? ''));
    if (body.type === 'url_verification') return { challenge: body.challenge };
    if (body.ssl_check) return reply.status(200).send();
    if (!this.bolt) throw new Error('the Slack receiver was not given to a Bolt app');

    const retryNum = header(request, 'x-slack-retry-num');
    let answer: (response: unknown) => void = () => undefined;
    const acked = new Promise<unknown>((resolve) => { answer = resolve; });
    let done = false;
    let acknowledged = false;
    const event: ReceiverEvent = {
      body,
      retryNum: retryNum === undefined ? undefined : Number(retryNum),
      retryReason: header(request, 'x-slack-retry-reason'),
      ack: async (response?: unknown) => {
        if (acknowledged) throw new Error('this Slack request was already acknowledged');
        acknowledged = true;
        if (done) {
          this.options.log.warn(`slack: a listener acknowledged a ${describe(body)} after ${this.deadlineMs} ms, when Slack had its answer already`);
          return;
        }
        done = true;
        answer(response);
      },
    };
    const processed = this.bolt.processEvent(event).catch((error) => {
      this.options.log.error(`slack: a listener failed: ${(error as Error).stack ?? error}`);
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), this.deadlineMs); });
    const response = await Promise.race([acked, processed.then(() => undefined), deadline]);
    clearTimeout(timer);
    if (!done) {
      done = true;
      this.options.log.debug(`slack: no listener acknowledged a ${describe(body)}; answered 200 so Slack does not retry it`);
    }
    if (response === undefined || response === '') return reply.status(200).send();
    if (typeof response === 'string') return reply.status(200).type('text/plain; charset=utf-8').send(response);
    return reply.status(200).send(response);
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Slack's three body shapes, after the signature check (which needs the bytes unparsed). */
export function parseBody(raw: string, contentType: string): Record<string, any> {
  try {
    let parsed: unknown;
    if (contentType.startsWith(FORM)) {
      const form = Object.fromEntries(new URLSearchParams(raw));
      if (typeof form.payload !== 'string') return form;
      parsed = JSON.parse(form.payload);
    } else {
      parsed = JSON.parse(raw);
    }
    // An interaction payload of `null` or `[]` would otherwise fail later, as a 500.
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed;
  } catch {
    // Falls through to the refusal below.
  }
  throw badRequest('the body is not a Slack event, command or interaction');
}

function describe(body: Record<string, any>): string {
  if (body.command) return `command ${body.command}`;
  if (body.event?.type) return `${body.event.type} event`;
  return `${body.type ?? 'request'}`;
}
