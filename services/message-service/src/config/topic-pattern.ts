/**
 * Topic patterns of the app registry: a topic name in which `*` stands for any run of
 * characters, dots included (`orders.*` matches `orders.paid` and `orders.eu.paid`; `*`
 * alone matches every topic).
 */
import { TOPIC_PATTERN } from '../domain/message.js';

/** What a topic pattern may hold: topic characters and `*`. */
export const TOPIC_PATTERN_SYNTAX = /^[A-Za-z0-9._*-]{1,128}$/;

/** Whether `pattern` holds a wildcard (else it names exactly one topic). */
export function isWildcard(pattern: string): boolean {
  return pattern.includes('*');
}

/** A predicate matching the topics of `pattern`. */
export function topicMatcher(pattern: string): (topic: string) => boolean {
  if (!isWildcard(pattern)) return (topic) => topic === pattern;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.-]/g, '\\$&'))
    .join('.+');
  const regex = new RegExp(`^${source}$`);
  return (topic) => TOPIC_PATTERN.test(topic) && regex.test(topic);
}
