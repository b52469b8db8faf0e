/**
 * What every rms-admin command ends with: its exit status, and the usage mistake type.
 */

/** Exit statuses of rms-admin. */
export const EXIT = {
  /** Done. */
  OK: 0,
  /** A dependency (RMS, ZooKeeper) could not be reached within the timeout, or refused the request. */
  FAILED: 1,
  /** The command line was wrong; the usage was printed. */
  USAGE: 2,
} as const;

/** A mistake in the command line: printed with the usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Where a command writes: stdout for results, stderr for failures. */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}
