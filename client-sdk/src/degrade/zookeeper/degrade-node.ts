/**
 * The degrade node's data: `{"mode","degraded","reason","changedAt","changedBy"}` as JSON
 * (the version is the node's, not the data's). What counts as valid data is decided here.
 */
import { DEGRADE_MODES, INITIAL_DEGRADE_STATE, type DegradeMode, type DegradeState } from '../degrade-switch.js';

/** The node's JSON: the state without its version (the version is the node's, not the data's). */
export function encodeNode(state: Omit<DegradeState, 'version'>): Buffer {
  const { mode, degraded, reason, changedAt, changedBy } = state;
  return Buffer.from(JSON.stringify({ mode, degraded, reason, changedAt, changedBy }), 'utf8');
}

/**
 * Reads the node's JSON. `mode` and `degraded` are required, since they decide where the
 * traffic goes; the descriptive fields may be missing (an SRE writing by hand), but not of
 * the wrong type.
 * @returns the state, or the problem with the data.
 */
export function decodeNode(data: Buffer | undefined | null, version: number): DegradeState | string {
  const text = data?.toString('utf8') ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'not a JSON object';
  const record = parsed as Record<string, unknown>;
  const { mode, degraded, reason = null, changedAt = INITIAL_DEGRADE_STATE.changedAt, changedBy = 'unknown' } = record;
  if (typeof mode !== 'string' || !DEGRADE_MODES.includes(mode as DegradeMode)) return `"mode" must be one of ${DEGRADE_MODES.join(', ')}`;
  if (typeof degraded !== 'boolean') return '"degraded" must be true or false';
  if (reason !== null && typeof reason !== 'string') return '"reason" must be a string or null';
  if (typeof changedAt !== 'string') return '"changedAt" must be a string';
  if (typeof changedBy !== 'string') return '"changedBy" must be a string';
  return { mode: mode as DegradeMode, degraded, reason, changedAt, changedBy, version };
}
