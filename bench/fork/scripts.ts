// The benches' host side: their scripts, copied into a root-only directory on the host.
import * as fs from "fs";
import * as path from "path";
import { SparksLabHost } from "../../test/host/labHost";

export const ON_HOST_DIR = "/root/bench-fork";

/** Copies each of `names`, from the directory `from` (this one unless told), to ON_HOST_DIR. */
export async function copyScripts(host: SparksLabHost, names: string[], from = __dirname): Promise<void> {
    await host.ok(`install -d -m 0700 ${ON_HOST_DIR}`);
    for (const name of names) await host.ok(`cat > ${ON_HOST_DIR}/${name}`, fs.readFileSync(path.join(from, name), "utf8"));
}
