/**
 * The operator's routes (admins only): `GET /v1/stats` (messages by status and topic, the
 * oldest waiting ones, the failover state) and `GET`/`PUT /v1/degrade`, the degrade switch
 * read and written through the same switch module `rms-admin degrade` uses.
 */
import { type DegradeSwitch, DegradeSwitchError, isDegraded } from '@rms/client-sdk';
import { Router } from 'express';
import type { MessageStats } from '../../application/message-stats.js';
import { DependencyUnavailableError, RmsError } from '../../domain/errors.js';
import { callerOf, requireRole } from '../authentication.js';
import { SMALL_BODY_LIMIT_BYTES, jsonBody } from '../json-body.js';
import { toMessageView } from '../message-view.js';
import { degradeBodySchema, parseOrThrow } from '../request-schemas.js';

/** Dependencies of the operations routes. */
export interface OperationsRoutesOptions {
  stats: MessageStats;
  /** The degrade switch RMS publishes by; absent when RMS runs with a transport of its own (tests, embedding). */
  degradeSwitch?: DegradeSwitch | undefined;
  /** The failover transport's state (mode, consecutive failures, ...); absent without one. */
  failoverStatus?: (() => Record<string, unknown>) | undefined;
}

/** The degrade switch's state on the wire, with the effective verdict spelled out. */
function degradeView(degradeSwitch: DegradeSwitch) {
  const state = degradeSwitch.current();
  return { ...state, effective: isDegraded(state) ? 'degraded' : 'normal', connected: degradeSwitch.connected };
}

/** The `/v1/stats` and `/v1/degrade` routes. Mount after `authenticate`. */
export function operationsRoutes({ stats, degradeSwitch, failoverStatus }: OperationsRoutesOptions): Router {
  const router = Router();
  const requireSwitch = (): DegradeSwitch => {
    if (!degradeSwitch) throw new RmsError('NOT_FOUND', 'this RMS runs without a degrade switch (it was started with a transport of its own)');
    return degradeSwitch;
  };

  router.get('/v1/stats', requireRole('admin'), async (_request, response) => {
    const snapshot = await stats.snapshot();
    const now = Date.now();
    response.json({
      at: snapshot.at.toISOString(),
      totals: snapshot.totals,
      counts: snapshot.counts,
      oldestWaiting: snapshot.oldestWaiting.map((message) => ({
        ...toMessageView(message),
        waitingSeconds: Math.max(0, Math.round((now - message.createdAt.getTime()) / 1000)),
      })),
      failover: failoverStatus ? failoverStatus() : null,
      degrade: degradeSwitch ? degradeView(degradeSwitch) : null,
    });
  });

  router.get('/v1/degrade', requireRole('admin'), (_request, response) => {
    response.json(degradeView(requireSwitch()));
  });

  router.put('/v1/degrade', requireRole('admin'), jsonBody(SMALL_BODY_LIMIT_BYTES), async (request, response) => {
    const body = parseOrThrow(degradeBodySchema, request.body);
    const target = requireSwitch();
    try {
      await target.setMode(body.mode, body.reason, `${callerOf(response).app} (RMS dashboard)`);
    } catch (error) {
      if (error instanceof DegradeSwitchError) throw new DependencyUnavailableError('zookeeper', `the degrade switch could not be written: ${error.message}`);
      throw error;
    }
    response.json(degradeView(target));
  });

  return router;
}
