/**
 * `npm run drill`: the failover drill (see `failover-drill-run.ts`) on the services named
 * by `REDIS_URL` and `ZK_CONNECT` (a Redis Cluster's seeds and a ZooKeeper ensemble work
 * too), `DRILL_ORDERS_PER_PHASE` orders per phase. Prints where the messages went and
 * whether the books balance; exits 1 when they do not.
 */
import { runFailoverDrill } from './failover-drill-run.js';

const result = await runFailoverDrill({ perPhase: Number(process.env['DRILL_ORDERS_PER_PHASE'] ?? 100) });
process.exit(result.balanced ? 0 : 1);
