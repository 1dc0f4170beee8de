// Sparks: read the stack config, build the fleet, export what it made.
import { loadFleetConfig } from "./components/config";
import { deployFleet } from "./components/fleet";

const fleet = deployFleet(loadFleetConfig());

/** Per host: what the verify step found (pool, tools version, KVM API version). */
export const hosts = fleet.hosts;
/** Per instance and fork: its port and its connection URI (a secret). */
export const postgres = fleet.postgres;
