/**
 * The app registry: who may call RMS, with which roles, where producers answer
 * check-backs, which topics each producer may write, and which topics each consumer reads
 * under which consumer group. Loaded once at start-up from `RMS_APPS` (a JSON array, or a path to a JSON
 * file holding one) and validated; a lookup by token is one SHA-256, one map look-up and
 * one constant-time compare, however many apps are registered.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ConfigurationError } from '../domain/errors.js';
import { DEFAULT_GROUP, GROUP_PATTERN } from '../domain/message.js';
import { TOPIC_PATTERN_SYNTAX, topicMatcher } from './topic-pattern.js';
import { readJsonSetting } from './json-setting.js';

/** What an app may do. */
export const ROLES = ['producer', 'consumer', 'admin'] as const;

/** A role: `producer` prepares and settles its messages, `consumer` acks, `admin` reads all and resends. */
export type Role = (typeof ROLES)[number];

/** One registered app. */
export interface AppRegistration {
  /** The app's name; recorded as a message's `producer`. */
  app: string;
  /** Its bearer token. */
  token: string;
  /** What it may do. */
  roles: Role[];
  /** Where RMS checks back on its pending messages (producers only). */
  checkUrl?: string;
  /** The HMAC-SHA256 key for check-back signatures (producers only). */
  secret?: string;
  /**
   * The topics a producer may write, as topic patterns (`orders.*`). Without a list the
   * producer may write any topic (as before; RMS warns at start-up).
   * @defaultValue any topic
   */
  topics?: string[];
  /**
   * The topics a consumer reads, each under a consumer group (default: the app's name).
   * Every group subscribed to a topic gets its own delivery of each message. Without a
   * list the consumer may ack any delivery (as before; RMS warns at start-up).
   * @defaultValue none: acks any delivery
   */
  subscriptions?: Subscription[];
}

/** One consumer subscription of the registry. */
export interface Subscription {
  /** A topic, or a topic pattern (`orders.*`). */
  topic: string;
  /** The consumer group. @defaultValue the app's name */
  group?: string;
}

/** A subscription with its group resolved. */
interface ResolvedSubscription {
  app: string;
  topic: string;
  group: string;
  matches: (topic: string) => boolean;
}

const appSchema = z
  .strictObject({
    app: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'app must match [A-Za-z0-9._-]{1,64}'),
    token: z.string().min(16, 'token must be at least 16 characters'),
    roles: z.array(z.enum(ROLES)).min(1, 'roles must name at least one of producer, consumer, admin'),
    checkUrl: z.url({ protocol: /^https?$/, error: 'checkUrl must be an http(s) URL' }).optional(),
    secret: z.string().min(16, 'secret must be at least 16 characters').optional(),
    topics: z.array(z.string().regex(TOPIC_PATTERN_SYNTAX, 'topics must be topic names or patterns with *, [A-Za-z0-9._*-]{1,128}')).optional(),
    subscriptions: z
      .array(
        z.strictObject({
          topic: z.string().regex(TOPIC_PATTERN_SYNTAX, 'subscriptions[].topic must be a topic name or a pattern with *, [A-Za-z0-9._*-]{1,128}'),
          group: z.string().regex(GROUP_PATTERN, 'subscriptions[].group must match [A-Za-z0-9_-]{1,64} (no dots: it ends queue names)').optional(),
        }),
      )
      .optional(),
  })
  .refine((app) => !app.roles.includes('producer') || (app.checkUrl !== undefined && app.secret !== undefined), {
    message: 'a producer needs checkUrl and secret: RMS checks back on its pending messages',
  })
  .refine((app) => app.subscriptions === undefined || app.roles.includes('consumer'), { message: 'subscriptions are for apps with the consumer role' })
  .refine((app) => app.topics === undefined || app.roles.includes('producer'), { message: 'topics are for apps with the producer role' });

const registrySchema = z.array(appSchema).min(1, 'register at least one app');

function digest(token: string): Buffer {
  return hash('sha256', token, 'buffer');
}

/** The registered apps, looked up by token or name. */
export class AppRegistry {
  private readonly byName = new Map<string, AppRegistration>();
  /** By the token's SHA-256, as a latin1 string (one character per byte). */
  private readonly byDigest = new Map<string, { digest: Buffer; app: AppRegistration }>();
  private readonly subscriptions: ResolvedSubscription[];
  private readonly producerTopics = new Map<string, ((topic: string) => boolean)[]>();
  private readonly groupsByTopic = new Map<string, string[]>();

  constructor(apps: AppRegistration[]) {
    for (const app of apps) this.byName.set(app.app, app);
    for (const app of apps) {
      const tokenDigest = digest(app.token);
      this.byDigest.set(tokenDigest.toString('latin1'), { digest: tokenDigest, app });
    }
    this.subscriptions = apps.flatMap((app) =>
      (app.subscriptions ?? []).map((subscription) => ({
        app: app.app,
        topic: subscription.topic,
        group: subscription.group ?? app.app,
        matches: topicMatcher(subscription.topic),
      })),
    );
    for (const app of apps) if (app.topics) this.producerTopics.set(app.app, app.topics.map(topicMatcher));
  }

  /**
   * The consumer groups that get a delivery of a message of `topic`: every group
   * subscribed to it, in registry order, or the default group alone when none is (the
   * topic's shared queue, as before groups existed).
   */
  groupsFor(topic: string): string[] {
    let groups = this.groupsByTopic.get(topic);
    if (!groups) {
      groups = [...new Set(this.subscriptions.filter((subscription) => subscription.matches(topic)).map((subscription) => subscription.group))];
      if (groups.length === 0) groups = [DEFAULT_GROUP];
      // Topics are few and long-lived; a registry is fixed for the life of the process.
      if (this.groupsByTopic.size < 100_000) this.groupsByTopic.set(topic, groups);
    }
    return groups;
  }

  /** Whether `app` may write `topic`: its `topics` list matches, or it has none. */
  mayProduce(app: string, topic: string): boolean {
    const allowed = this.producerTopics.get(app);
    return !allowed || allowed.some((matches) => matches(topic));
  }

  /**
   * The groups in which `app` reads `topic`; `undefined` when the app declares no
   * subscriptions (it may then ack any delivery, as before groups existed).
   */
  groupsOf(app: string, topic: string): string[] | undefined {
    if (this.byName.get(app)?.subscriptions === undefined) return undefined;
    return [...new Set(this.subscriptions.filter((subscription) => subscription.app === app && subscription.matches(topic)).map((subscription) => subscription.group))];
  }

  /** What an operator should hear at start-up: apps whose topics or groups are not declared. */
  warnings(): string[] {
    const warnings: string[] = [];
    for (const app of this.byName.values()) {
      if (app.roles.includes('producer') && !app.topics) warnings.push(`producer ${app.app} declares no topics: it may write any topic`);
      if (app.roles.includes('consumer') && !app.subscriptions) warnings.push(`consumer ${app.app} declares no subscriptions: it may ack any delivery of any topic`);
    }
    return warnings;
  }

  /**
   * The app holding `token`, or `undefined`. The map is keyed by the token's SHA-256, never
   * the token, so the look-up's timing depends on the digest alone, which tells an attacker
   * nothing about any registered token; the match is then confirmed in constant time.
   */
  findByToken(token: string): AppRegistration | undefined {
    const candidate = digest(token);
    const entry = this.byDigest.get(candidate.toString('latin1'));
    return entry && timingSafeEqual(entry.digest, candidate) ? entry.app : undefined;
  }

  /** The app named `name`, or `undefined`. */
  findByName(name: string): AppRegistration | undefined {
    return this.byName.get(name);
  }

  /** Every registered app. */
  all(): AppRegistration[] {
    return [...this.byName.values()];
  }
}

/**
 * Parses `RMS_APPS`: a JSON array, or a path to a file holding one.
 * @throws ConfigurationError naming `RMS_APPS` and the offending entry and field.
 */
export function parseAppRegistry(value: string): AppRegistration[] {
  const apps = readJsonSetting('RMS_APPS', value, registrySchema) as AppRegistration[];
  const names = new Set<string>();
  const tokens = new Set<string>();
  for (const app of apps) {
    if (names.has(app.app)) throw new ConfigurationError(`RMS_APPS: app "${app.app}" is registered twice`);
    if (tokens.has(app.token)) throw new ConfigurationError(`RMS_APPS: app "${app.app}" reuses another app's token`);
    names.add(app.app);
    tokens.add(app.token);
  }
  return apps;
}
