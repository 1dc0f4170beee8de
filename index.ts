// Sparks: read the stack config, build the fleet, export what it made.
import { loadFleetConfig } from "./components/config";
import { deployFleet } from "./components/fleet";

const fleet = deployFleet(loadFleetConfig());

/** Per host: what the verify step found (pool, tools version, KVM API version, Postgres TLS certificate). */
export const hosts = fleet.hosts;
/** Per instance and fork: its port, host, source (and the source's snapshot it was made from, if
 *  any) and connection URI (a secret; sslmode=verify-full). */
export const postgres = fleet.postgres;
/** Per Redis instance and fork: its port, host, source and connection URI (a secret, redis://). */
export const redis = fleet.redis;
/** Per dev container: its state, address, image, limits and packages, and what its verify found. */
export const devContainers = fleet.devContainers;
/** The skills repo, if the stack has one: its clone and push URLs, main's commit, verify's commit.
 *  null without one (an undefined output would make every preview warn). */
export const skillsRepo = fleet.skillsRepo ?? null;
