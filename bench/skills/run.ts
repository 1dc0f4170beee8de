// The skills repo by the numbers: push-to-synced (a skill pushed over SSH, until a dev container's
// ~/skills holds it: by the 20 s timer alone, and with an on-demand sync), and the clone over HTTP
// of a repo of 200 skills from another machine (this one). Run by hand, as root, with the lab free
// (it brings up its own host):
//
//   npx ts-node bench/skills/run.ts [--runs 7]
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { sparksLabHost } from "../../test/host/labHost";
import { medianRow as line, option } from "../stats";

(async () => {
    const runs = Number(option("runs", "7"));
    const host = await sparksLabHost({ SPARK_PG_PORTS: "5432-5499" }, ["systemd-container", "mmdebstrap", "python3", "lighttpd", "python3-yaml", "curl", "git"]);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "bench-skills-"));
    try {
        const script = fs.readFileSync(path.join(__dirname, "on-host.sh"), "utf8");
        const out = JSON.parse(await host.ok(`cat >/root/bench-skills.sh && bash /root/bench-skills.sh ${runs} ${host.address} 10.89.42.231`, script));
        // The 200-skill repo, cloned over HTTP from this machine: another host on the network.
        const clones: number[] = [];
        for (let i = 0; i < runs; i++) {
            const into = path.join(work, `clone-${i}`);
            const started = process.hrtime.bigint();
            execFileSync("git", ["clone", "-q", `http://${host.address}:8080/skills.git`, into]);
            clones.push(Math.round(Number(process.hrtime.bigint() - started) / 1e6));
        }
        out.clone_200_ms = clones;
        console.log(`| ${runs} runs | median | range |\n| --- | --- | --- |`);
        console.log(line("push to synced ~/skills, by the timer (every 20 s)", out.push_to_sync_timer_ms));
        console.log(line("push to synced ~/skills, on demand (spark-dev skills-sync)", out.push_to_sync_on_demand_ms));
        console.log(line(`clone over HTTP of ${out.skills} skills (${(out.repo_kb / 1024).toFixed(1)} MB repo)`, clones));
        console.log(`\npush of the 200 skills (hook checks all of them): ${out.push_200_ms} ms`);
        fs.writeFileSync(path.join(__dirname, `results-${new Date().toISOString().slice(0, 10)}.json`), `${JSON.stringify(out, null, 1)}\n`);
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
        await host.down();
    }
})().catch((error) => { console.error(error); process.exit(1); });
