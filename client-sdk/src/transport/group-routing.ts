/**
 * Where a consumer group's deliveries of a topic wait: its RabbitMQ queue and its Redis
 * fallback lists. Shared by RMS (which publishes) and `subscribe` (which consumes), so the
 * two agree on the names.
 */

/**
 * The group of a topic no app subscribes to. Its deliveries use the topic's shared queue
 * `rms.<topic>` and lists `rms:fb:<topic>:NN`, the names used before consumer groups
 * existed, so consumers written before them keep working.
 */
export const DEFAULT_GROUP = 'default';

/** Default prefix of every queue name. */
export const DEFAULT_QUEUE_PREFIX = 'rms.';

/**
 * The queue a group's deliveries of a topic wait in: `<prefix><topic>.<group>`
 * (`rms.orders.paid.loyalty`), or `<prefix><topic>` for the default group. Each queue is
 * bound to the exchange under its own name, so a deployment with another prefix on the
 * same broker (and exchange) never sees these deliveries.
 * @param prefix - the queue prefix. @defaultValue `'rms.'`
 */
export function groupQueueName(topic: string, group: string = DEFAULT_GROUP, prefix: string = DEFAULT_QUEUE_PREFIX): string {
  return group === DEFAULT_GROUP ? `${prefix}${topic}` : `${prefix}${topic}.${group}`;
}

/**
 * The name a group's fallback lists are keyed by: the topic for the default group,
 * `<topic>:<group>` otherwise (so `rms:fb:orders.paid:loyalty:07`).
 */
export function fallbackStreamName(topic: string, group: string = DEFAULT_GROUP): string {
  return group === DEFAULT_GROUP ? topic : `${topic}:${group}`;
}

/** The groups a delivery goes to: those named, or the default group. */
export function deliveryGroups(groups: readonly string[] | undefined): readonly string[] {
  return groups && groups.length > 0 ? groups : [DEFAULT_GROUP];
}
