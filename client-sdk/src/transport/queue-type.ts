/**
 * Which kind of RabbitMQ queue RMS declares for a topic: a classic queue (the default, and
 * what a single broker wants) or a quorum queue (replicated with Raft across a cluster's
 * nodes, the choice for a RabbitMQ cluster). Publisher and consumers must agree, or the
 * broker refuses the second declaration (`PRECONDITION_FAILED`, inequivalent
 * `x-queue-type`): an existing queue keeps its type until it is deleted.
 *
 * A quorum queue's delivery limit is left alone: RMS rejects deliveries without requeueing
 * and owns redelivery itself, so the broker's count of returned deliveries only grows when
 * a consumer dies holding messages, and RMS redelivers those on its own schedule anyway.
 */

/** The queue kinds RMS can declare. */
export const QUEUE_TYPES = ['classic', 'quorum'] as const;

/** One of {@link QUEUE_TYPES}. */
export type QueueType = (typeof QUEUE_TYPES)[number];

/**
 * The `assertQueue` arguments for `queueType` merged with `extra` (the caller's own, which
 * win), or `undefined` when there are none: a classic queue is declared without
 * `x-queue-type`, so queues declared before the setting existed stay equivalent.
 */
export function queueArgumentsFor(queueType: QueueType | undefined, extra?: Record<string, unknown>): Record<string, unknown> | undefined {
  const typed = queueType === 'quorum' ? { 'x-queue-type': 'quorum' } : {};
  const merged = { ...typed, ...extra };
  return Object.keys(merged).length === 0 ? undefined : merged;
}
