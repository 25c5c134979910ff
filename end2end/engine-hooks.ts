// The engine's test hooks, shared by the config (which hands them to the
// server) and the specs (which use them).
import { tmpdir } from 'node:os';
import path from 'node:path';

const baseURL = process.env.OPSHUB_E2E_BASE_URL ?? 'http://127.0.0.1:3000';

/** While this file exists the server's workers hold their runs between
 * batches (`engine_pause_file`), so a run stalls on purpose. One per port,
 * so two suites on one machine do not pause each other. */
export const PAUSE_FILE =
  process.env.OPSHUB_E2E_PAUSE_FILE ??
  path.join(tmpdir(), `opshub-e2e-pause-${new URL(baseURL).port || '80'}`);

/** A run standing still this long is flagged stalled (floor = ceiling, so
 * the demo data's history does not move it). Long enough that no run of
 * the other journeys, whose batches land every 250 ms, ever stalls. */
export const STALL_AFTER_SECS = 5;
