/**
 * Folds the per-(topic, status) groups both store adapters read into one `TopicBacklog`
 * per topic, so the adapters differ only in their query.
 */
import type { MessageStatus } from '../domain/message.js';
import type { TopicBacklog } from './message-store.js';

/** One (topic, status) group as an adapter reads it. */
export interface BacklogGroup {
  topic: string;
  status: MessageStatus;
  count: number;
  /** The oldest `createdAt` of the group. */
  oldestCreatedAt: Date | null;
  /** The oldest `confirmedAt` of the group. */
  oldestConfirmedAt: Date | null;
}

/** One backlog per topic, topics in name order. */
export function foldBacklogGroups(groups: readonly BacklogGroup[]): TopicBacklog[] {
  const byTopic = new Map<string, TopicBacklog>();
  for (const group of groups) {
    let backlog = byTopic.get(group.topic);
    if (!backlog) {
      backlog = { topic: group.topic, pending: 0, sending: 0, dead: 0, oldestPendingCreatedAt: null, oldestSendingConfirmedAt: null };
      byTopic.set(group.topic, backlog);
    }
    if (group.status === 'PENDING') {
      backlog.pending += group.count;
      backlog.oldestPendingCreatedAt = group.oldestCreatedAt;
    } else if (group.status === 'SENDING') {
      backlog.sending += group.count;
      backlog.oldestSendingConfirmedAt = group.oldestConfirmedAt;
    } else if (group.status === 'DEAD') {
      backlog.dead += group.count;
    }
  }
  return [...byTopic.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
}
