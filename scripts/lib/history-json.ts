import { createRequire } from 'node:module';
import proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

/**
 * Workflow histories as Temporal's JSON history files (the format of `temporal workflow show
 * --output json` and of the SDK's `historyToJSON` / `historyFromJSON`), for the replay fixtures.
 *
 * Why not the SDK's own functions: dockerode needs protobufjs 7 at the top of node_modules, so npm
 * gives @temporalio/common, /proto and /worker each a nested copy of protobufjs 8, and
 * `historyToJSON` / `historyFromJSON` (and `Worker.runReplayHistory` given JSON) then fail with
 * "type must be a Type": the history type comes from one copy and the JSON codec from another. The
 * codec below is taken from the same copy as @temporalio/proto's types, and produces the same JSON.
 */
type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

const codec = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');

export function historyToJson(history: History): string {
  return JSON.stringify(codec.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)), null, 2);
}

/** A history JSON file's content as the History object `Worker.runReplayHistories` takes. */
export function historyFromJson(json: unknown): History {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { events?: unknown }).events)) {
    throw new TypeError('not a Temporal history: expected an object with an array of events');
  }
  // Fields a newer server or SDK added are ignored, as the SDK's own reader does.
  const history = codec.fromJson(historyType, json, { ignoreUnknownFields: true }) as History | null;
  if (!history?.events?.length) throw new TypeError('not a Temporal history: it has no events');
  return history;
}
