// The fork benches' host side: their scripts, copied into a root-only directory on the host.
import * as fs from "fs";
import * as path from "path";
import { SparkPgHost } from "../../test/host/labHost";

export const ON_HOST_DIR = "/root/bench-fork";

export async function copyScripts(host: SparkPgHost, names: string[]): Promise<void> {
    await host.ok(`install -d -m 0700 ${ON_HOST_DIR}`);
    for (const name of names) await host.ok(`cat > ${ON_HOST_DIR}/${name}`, fs.readFileSync(path.join(__dirname, name), "utf8"));
}
