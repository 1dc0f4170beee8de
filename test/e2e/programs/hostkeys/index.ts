// A minimal program over the project's own connection code: for each configured host, the
// readiness gate and one remote command through the command provider, with the host key the stack
// file pins. test/e2e/hostkeys.test.ts runs it against stock sshd hosts with each key type pinned.
import * as command from "@pulumi/command";
import { loadFleetConfig } from "./components/config";
import { hostConnection } from "./components/hostConnection";

const fleet = loadFleetConfig();

/** Per host: the name the host itself reports, read over the pinned connection. */
export const hostnames = Object.fromEntries(fleet.hosts.map((host) => [host.name, new command.remote.Command(`${host.name}-hostname`, {
    connection: hostConnection(host, host.hostKey!, fleet.ssh, fleet.sshPrivateKey),
    create: "cat /etc/hostname",
}).stdout]));
