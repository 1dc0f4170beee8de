// spark-pg and spark-redis on one real lab host (systemd, btrfs, PostgreSQL 15, Redis 7), set up
// once: their suites run one after another, each leaving the host with no instance for the next.
// Hardening runs last, as the one that plants files and kills processes a later suite could trip on.
import { SparksLabHost, sparksLabHost } from "./labHost";
import { hardeningSuite } from "./suites/hardening";
import { lifecycleSuite } from "./suites/lifecycle";
import { redisSuite } from "./suites/redis";
import { reliabilitySuite } from "./suites/reliability";
import { snapshotsSuite } from "./suites/snapshots";

jest.setTimeout(30 * 60 * 1000);

let host: SparksLabHost;

beforeAll(async () => {
    host = await sparksLabHost({ SPARK_PG_PORTS: "5432-5499", SPARK_PG_LISTEN: "127.0.0.1 10.89.42.11", SPARK_PG_ALLOW: "10.89.42.0/24" });
});

afterAll(async () => {
    await host?.down();
});

const sharedHost = () => host;
lifecycleSuite(sharedHost);
snapshotsSuite(sharedHost);
reliabilitySuite(sharedHost);
redisSuite(sharedHost);
hardeningSuite(sharedHost);
