// The Agent Skills format as the skills repo checks it, without a host: `sparks skills validate`
// and `new` (the host tool's verbs, run here), and the repo's pre-receive hook on a real bare repo
// with real pushes (git runs host/libexec/spark-skills-hook, as it does on a host). Needs git and
// python3 with PyYAML (scripts/setup installs them).
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..", "..");
const SPARKS = path.join(ROOT, "bin", "sparks");
const HOOK = path.join(ROOT, "host", "libexec", "spark-skills-hook");
const SPARK_SKILLS = path.join(ROOT, "host", "bin", "spark-skills");
let tmp: string;

beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sparks-skills-")); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function sparks(...args: string[]): { status: number; out: string } {
    const result = spawnSync(SPARKS, args, { encoding: "utf8", cwd: tmp });
    return { status: result.status ?? 1, out: `${result.stdout}${result.stderr}` };
}

/** `sparks skills validate` runs this, the host tool's verb: the rules' cases ask it directly (no ts-node start each). */
function validate(...args: string[]): { status: number; out: string } {
    const result = spawnSync(SPARK_SKILLS, ["validate", ...args], { encoding: "utf8", cwd: tmp });
    return { status: result.status ?? 1, out: `${result.stdout}${result.stderr}` };
}

/** A repo folder holding the given files (path: content). */
function repo(name: string, files: Record<string, string>): string {
    const dir = path.join(tmp, name);
    for (const [file, content] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        fs.writeFileSync(path.join(dir, file), content);
    }
    return dir;
}

const skill = (name: string, more = "") => `---\nname: ${name}\ndescription: Does one thing. Use it when that thing is needed.\n${more}---\n# ${name}\n`;

describe("sparks skills validate: the format's rules, each named with its file", () => {
    test("a repo of valid skills, top-level files and hidden folders aside, passes", () => {
        const dir = repo("good", {
            "README.md": "not a skill\n",
            ".github/workflows/x.yml": "not a skill either\n",
            "pdf-tools/SKILL.md": skill("pdf-tools", "license: MIT\ncompatibility: Needs poppler-utils\nmetadata:\n  owner: platform\nallowed-tools: Bash(pdftotext:*) Read\n"),
            "pdf-tools/scripts/extract.sh": "#!/bin/sh\n",
            "a/SKILL.md": skill("a"),
            "long-description/SKILL.md": `---\nname: long-description\ndescription: >\n  Folded over\n  several lines.\n---\n`,
        });
        expect(sparks("skills", "validate", dir)).toEqual({ status: 0, out: `3 skill(s) in ${dir}: all valid\n` });
        const json = JSON.parse(validate(dir, "--json").out);
        expect(json.skills.map((s: { name: string }) => s.name)).toEqual(["a", "long-description", "pdf-tools"]);
        expect(json.skills[2].metadata).toEqual({ owner: "platform" });
        // One skill's folder by itself.
        expect(validate(path.join(dir, "pdf-tools")).status).toBe(0);
    });

    const bad: [string, Record<string, string>, string[]][] = [
        ["no SKILL.md", { "notes/readme.txt": "x" }, ["notes/: no SKILL.md (every top-level folder is a skill and needs one)"]],
        ["no front matter", { "x1/SKILL.md": "# x1\n" },
            ["x1/SKILL.md: does not start with YAML front matter (a '---' line, the fields, then a closing '---' line)"]],
        ["front matter never closed", { "x1/SKILL.md": "---\nname: x1\n" },
            ["x1/SKILL.md: does not start with YAML front matter (a '---' line, the fields, then a closing '---' line)"]],
        ["front matter that is not YAML", { "x1/SKILL.md": "---\nname: [x1\n---\n" },
            ["x1/SKILL.md: front matter is not valid YAML (line 2): expected ',' or ']', but got '<stream end>'"]],
        ["front matter that is a list", { "x1/SKILL.md": "---\n- name\n---\n" },
            ["x1/SKILL.md: front matter is not a set of fields (name: ..., description: ...)"]],
        ["no name", { "x1/SKILL.md": "---\ndescription: d\n---\n" }, ["x1/SKILL.md: 'name' is missing"]],
        ["a name with capitals", { "Pdf/SKILL.md": skill("Pdf") },
            ["Pdf/SKILL.md: 'name' 'Pdf' must be 1-64 characters of a-z, 0-9 and '-', with no leading, trailing or double '-'"]],
        ["a name with a double dash", { "a--b/SKILL.md": skill("a--b") },
            ["a--b/SKILL.md: 'name' 'a--b' must be 1-64 characters of a-z, 0-9 and '-', with no leading, trailing or double '-'"]],
        ["a name with a leading dash", { "-a/SKILL.md": skill("-a") },
            ["-a/SKILL.md: 'name' '-a' must be 1-64 characters of a-z, 0-9 and '-', with no leading, trailing or double '-'"]],
        ["a name of 65 characters", { [`${"a".repeat(65)}/SKILL.md`]: skill("a".repeat(65)) },
            [`${"a".repeat(65)}/SKILL.md: 'name' '${"a".repeat(65)}' must be 1-64 characters of a-z, 0-9 and '-', with no leading, trailing or double '-'`]],
        ["a name that is a number", { "x1/SKILL.md": "---\nname: 12\ndescription: d\n---\n" },
            ["x1/SKILL.md: 'name' '12' must be 1-64 characters of a-z, 0-9 and '-', with no leading, trailing or double '-'"]],
        ["a name that differs from its folder", { "pdf/SKILL.md": skill("pdf-tools") },
            ["pdf/SKILL.md: 'name' is 'pdf-tools' but the folder is 'pdf': they must be the same"]],
        ["no description", { "x1/SKILL.md": "---\nname: x1\n---\n" },
            ["x1/SKILL.md: 'description' is missing (what the skill does and when to use it)"]],
        ["an empty description", { "x1/SKILL.md": "---\nname: x1\ndescription: ''\n---\n" },
            ["x1/SKILL.md: 'description' must be text (what the skill does and when to use it)"]],
        ["a description of 1025 characters", { "x1/SKILL.md": `---\nname: x1\ndescription: ${"d".repeat(1025)}\n---\n` },
            ["x1/SKILL.md: 'description' is 1025 characters; at most 1024"]],
        ["compatibility of 501 characters", { "x1/SKILL.md": skill("x1", `compatibility: ${"c".repeat(501)}\n`) },
            ["x1/SKILL.md: 'compatibility' is 501 characters; at most 500"]],
        ["metadata that is not text to text", { "x1/SKILL.md": skill("x1", "metadata:\n  version: 2\n") },
            ["x1/SKILL.md: 'metadata' must map text to text; 'version': '2' does not"]],
        ["allowed-tools as a list", { "x1/SKILL.md": skill("x1", "allowed-tools: [Read]\n") },
            ["x1/SKILL.md: 'allowed-tools' must be text, not '['Read']'"]],
        ["an unknown field", { "x1/SKILL.md": skill("x1", "author: ada\n") },
            ["x1/SKILL.md: unknown field 'author' (allowed: name, description, license, compatibility, metadata, allowed-tools)"]],
        ["SKILL.md that is not UTF-8", { "x1/SKILL.md": "---\nname: x1\ndescription: caf\xe9\n---\n" }, []],
    ];
    test.each(bad)("%s", (title, files, messages) => {
        const dir = repo(`bad-${title.replace(/\W+/g, "-")}`, files);
        if (title === "SKILL.md that is not UTF-8") {
            fs.writeFileSync(path.join(dir, "x1", "SKILL.md"), Buffer.from([0x2d, 0x2d, 0x2d, 0x0a, 0xff, 0xfe, 0x0a]));
            messages = ["x1/SKILL.md: is not UTF-8 text"];
        }
        expect(validate(dir)).toEqual({ status: 1, out: messages.map((m) => `${m}\n`).join("") });
    });

    test("a SKILL.md that is a symlink is refused, not followed", () => {
        const dir = repo("link", { "x1/target.md": skill("x1") });
        fs.symlinkSync("target.md", path.join(dir, "x1", "SKILL.md"));
        expect(validate(dir)).toEqual({ status: 1, out: "x1/SKILL.md: is a link, not a file\n" });
    });

    test("a directory that does not exist is an error, not a pass", () => {
        expect(validate(path.join(tmp, "nowhere"))).toEqual({ status: 2, out: `spark-skills: '${path.join(tmp, "nowhere")}' is not a directory\n` });
    });
});

describe("sparks skills new", () => {
    test("makes a skill that validates, and never overwrites one", () => {
        const dir = repo("new", { "README.md": "x\n" });
        expect(sparks("skills", "new", "release-notes", "--dir", dir)).toEqual({ status: 0, out: `${dir}/release-notes/SKILL.md: made; edit its description, then spark-skills validate\n` });
        expect(validate(dir).status).toBe(0);
        expect(sparks("skills", "new", "release-notes", "--dir", dir)).toEqual({ status: 1, out: `spark-skills new: ${dir}/release-notes already exists\n` });
    });

    test("a name the format refuses leaves nothing behind", () => {
        const dir = repo("new-bad", { "README.md": "x\n" });
        expect(sparks("skills", "new", "Release_Notes", "--dir", dir)).toEqual({
            status: 1, out: "spark-skills new: Release_Notes/SKILL.md: 'name' 'Release_Notes' must be 1-64 characters of a-z, 0-9 and '-', with no leading, trailing or double '-'\n",
        });
        expect(fs.readdirSync(dir)).toEqual(["README.md"]);
    });
});

describe("the repo's pre-receive hook, on a real bare repo", () => {
    let bare: string;
    let work: string;
    const git = (cwd: string, ...args: string[]) => spawnSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd, encoding: "utf8" });
    const tip = (ref: string) => git(bare, "rev-parse", "-q", "--verify", ref).stdout.trim();
    const commitAll = (message: string) => expect([git(work, "add", "-A").status, git(work, "commit", "-q", "-m", message).status]).toEqual([0, 0]);

    beforeAll(() => {
        bare = path.join(tmp, "hooked.git");
        work = path.join(tmp, "hooked-work");
        execFileSync("git", ["init", "-q", "--bare", "-b", "main", bare]);
        // As spark-skills init sets it up: the hook from a directory of its own, history kept.
        const hooks = path.join(tmp, "hooks");
        fs.mkdirSync(hooks);
        fs.symlinkSync(HOOK, path.join(hooks, "pre-receive"));
        execFileSync("git", ["--git-dir", bare, "config", "core.hooksPath", hooks]);
        execFileSync("git", ["--git-dir", bare, "config", "receive.denyNonFastForwards", "true"]);
        execFileSync("git", ["clone", "-q", bare, work], { stdio: "ignore" });
        fs.mkdirSync(path.join(work, "good-one"));
        fs.writeFileSync(path.join(work, "good-one", "SKILL.md"), skill("good-one"));
        commitAll("a good skill");
        expect(git(work, "push", "-q", "origin", "HEAD:main").status).toBe(0);
    });

    test("a push of a broken skill is refused, naming the file and the problem, and nothing of it lands", () => {
        const before = tip("main");
        fs.mkdirSync(path.join(work, "second"));
        fs.writeFileSync(path.join(work, "second", "SKILL.md"), skill("second"));
        commitAll("a good one");
        fs.mkdirSync(path.join(work, "third"));
        fs.writeFileSync(path.join(work, "third", "SKILL.md"), skill("not-third"));
        commitAll("then a broken one");
        const pushed = git(work, "push", "origin", "HEAD:main");
        expect(pushed.status).not.toBe(0);
        expect(pushed.stderr).toContain("third/SKILL.md: 'name' is 'not-third' but the folder is 'third': they must be the same");
        expect(pushed.stderr).toContain("refs/heads/main");
        expect(pushed.stderr).toContain("nothing of this push was kept");
        expect(tip("main")).toBe(before);
        // Not even the objects: git discards a refused push's quarantine.
        const newCommit = git(work, "rev-parse", "HEAD").stdout.trim();
        expect(git(bare, "cat-file", "-e", newCommit).status).not.toBe(0);
        // Fixed, the same branch goes in.
        fs.writeFileSync(path.join(work, "third", "SKILL.md"), skill("third"));
        commitAll("fixed");
        expect(git(work, "push", "-q", "origin", "HEAD:main").status).toBe(0);
        expect(tip("main")).toBe(git(work, "rev-parse", "HEAD").stdout.trim());
    });

    test("main is never deleted nor rewritten; other branches and tags are checked too", () => {
        const main = tip("main");
        const deleted = git(work, "push", "origin", ":main");
        expect(deleted.status).not.toBe(0);
        expect(deleted.stderr).toContain("refs/heads/main: the main branch may not be deleted");
        expect(git(work, "commit", "-q", "--amend", "-m", "rewritten").status).toBe(0);
        expect(git(work, "push", "-f", "origin", "HEAD:main").status).not.toBe(0);
        expect(tip("main")).toBe(main);
        // A branch of broken skills is refused like main; a fine one goes in and may be deleted.
        fs.mkdirSync(path.join(work, "Broken"));
        fs.writeFileSync(path.join(work, "Broken", "SKILL.md"), "no front matter\n");
        commitAll("broken");
        const branch = git(work, "push", "origin", "HEAD:refs/heads/topic", "HEAD:refs/tags/v1");
        expect(branch.status).not.toBe(0);
        expect(branch.stderr).toContain("refs/heads/topic");
        expect(branch.stderr).toContain("refs/tags/v1");
        expect(tip("refs/heads/topic")).toBe("");
        expect(git(work, "push", "-q", "origin", `${main}:refs/heads/topic`).status).toBe(0);
        expect(git(work, "push", "-q", "origin", ":refs/heads/topic").status).toBe(0);
        const odd = git(work, "push", "origin", `${main}:refs/notes/x`);
        expect(odd.stderr).toContain("refs/notes/x: only branches and tags may be pushed");
    });
});
