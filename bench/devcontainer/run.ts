// Dev containers by the numbers: create-to-SSH-ready (median and range of several), the start of
// a stopped container, and the disk each costs beside the base image. Run by hand, as root, with
// the lab free (it brings up its own host):
//
//   npx ts-node bench/devcontainer/run.ts [--runs 7]
//
// The timing runs on the host itself (bench/devcontainer/on-host.sh), so the deploy's ssh is not in
// it; "SSH-ready" is the container's own sshd answering `ssh dev@ADDRESS true`.
import * as fs from "fs";
import * as path from "path";
import { sparksLabHost } from "../../test/host/labHost";
import { medianRow as line, option } from "../stats";

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

(async () => {
    const runs = Number(option("runs", "7"));
    const host = await sparksLabHost({ SPARK_PG_PORTS: "5432-5499" }, ["systemd-container", "mmdebstrap", "python3"]);
    try {
        const script = fs.readFileSync(path.join(__dirname, "on-host.sh"), "utf8");
        const out = JSON.parse(await host.ok(`cat >/root/bench-dev.sh && bash /root/bench-dev.sh ${runs} 10.89.42.2`, script));
        const ms = (v: number) => `${Math.round(v)} ms`;
        console.log(`base image ${out.image}: ${mb(out.image_bytes)}, built in ${(out.image_build_ms / 1000).toFixed(1)} s (once per host and recipe)\n`);
        console.log(`| ${runs} containers | median | range |\n| --- | --- | --- |`);
        console.log(line("create to SSH-ready", out.create_to_ssh_ms, ms));
        console.log(line("start (stopped) to SSH-ready", out.start_to_ssh_ms, ms));
        console.log(line("disk: root (exclusive)", out.root_exclusive_bytes, mb));
        console.log(line("disk: home (exclusive)", out.home_exclusive_bytes, mb));
        fs.writeFileSync(path.join(__dirname, `results-${new Date().toISOString().slice(0, 10)}.json`), `${JSON.stringify(out, null, 1)}\n`);
    } finally {
        await host.down();
    }
})().catch((error) => { console.error(error); process.exit(1); });
