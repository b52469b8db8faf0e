/**
 * The app registry: who may call RMS, with which roles, and where producers answer
 * check-backs. Loaded once at start-up from `RMS_APPS` (a JSON array, or a path to a JSON
 * file holding one) and validated; lookups by token are constant-time per request.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ConfigurationError } from '../domain/errors.js';
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
}

const appSchema = z
  .strictObject({
    app: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'app must match [A-Za-z0-9._-]{1,64}'),
    token: z.string().min(16, 'token must be at least 16 characters'),
    roles: z.array(z.enum(ROLES)).min(1, 'roles must name at least one of producer, consumer, admin'),
    checkUrl: z.url({ protocol: /^https?$/, error: 'checkUrl must be an http(s) URL' }).optional(),
    secret: z.string().min(16, 'secret must be at least 16 characters').optional(),
  })
  .refine((app) => !app.roles.includes('producer') || (app.checkUrl !== undefined && app.secret !== undefined), {
    message: 'a producer needs checkUrl and secret: RMS checks back on its pending messages',
  });

const registrySchema = z.array(appSchema).min(1, 'register at least one app');

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** The registered apps, looked up by token or name. */
export class AppRegistry {
  private readonly byName = new Map<string, AppRegistration>();
  private readonly entries: { digest: Buffer; app: AppRegistration }[];

  constructor(apps: AppRegistration[]) {
    for (const app of apps) this.byName.set(app.app, app);
    this.entries = apps.map((app) => ({ digest: digest(app.token), app }));
  }

  /** The app holding `token`, or `undefined`. Compares digests in constant time so timing does not leak tokens. */
  findByToken(token: string): AppRegistration | undefined {
    const candidate = digest(token);
    let found: AppRegistration | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, candidate)) found = entry.app;
    }
    return found;
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
