# The Agent Skills format, checked in one place: by the skills repo's pre-receive hook on the
# host, by `spark-skills validate` (and `sparks skills validate`, which runs it) before a push, and
# by the HTTP service that lists the skills. Imported, never run.
#
# A repo's skills are its top-level folders (those not starting with '.'); top-level files such
# as README.md are not skills. A skill is a folder holding SKILL.md, which starts with YAML front
# matter between two '---' lines:
#   name           required, 1-64 of a-z 0-9 '-', no leading, trailing or double '-', the folder's name
#   description    required, 1-1024 characters: what the skill does and when to use it
#   license        optional string
#   compatibility  optional, 1-500 characters
#   metadata       optional map of strings to strings
#   allowed-tools  optional string
# Any other field is refused (most likely a typo). scripts/, references/ and assets/ are optional.
import re
import subprocess

import yaml

NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
FIELDS = ("name", "description", "license", "compatibility", "metadata", "allowed-tools")
SKILL_FILE = "SKILL.md"
# Bigger is not a skill someone wrote; reading it would only cost the hook memory.
MAX_SKILL_FILE = 1024 * 1024


def shown(value, limit=80):
    """A value as a message may show it: printable, quoted, cut short."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return "'" + (text if len(text) <= limit else text[:limit] + "...") + "'"


def front_matter(text):
    """The front matter's YAML text, or None when the file does not start with it."""
    lines = text.split("\n")
    if lines[0].rstrip("\r") != "---":
        return None
    for i, line in enumerate(lines[1:], start=1):
        if line.rstrip("\r") == "---":
            return "\n".join(lines[1:i])
    return None


def check_skill(folder, data):
    """Problems with skill FOLDER whose SKILL.md holds DATA (bytes), and its fields when valid."""
    where = f"{folder}/{SKILL_FILE}"
    if len(data) > MAX_SKILL_FILE:
        return [f"{where}: is larger than {MAX_SKILL_FILE // 1024} KiB"], None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{where}: is not UTF-8 text"], None
    matter = front_matter(text)
    if matter is None:
        return [f"{where}: does not start with YAML front matter (a '---' line, the fields, then a closing '---' line)"], None
    try:
        fields = yaml.safe_load(matter)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(error, "problem", None) or "cannot be read"
        return [f"{where}: front matter is not valid YAML{at}: {problem}"], None
    if not isinstance(fields, dict):
        return [f"{where}: front matter is not a set of fields (name: ..., description: ...)"], None
    problems = []
    for key in fields:
        if key not in FIELDS:
            problems.append(f"{where}: unknown field {shown(str(key))} (allowed: {', '.join(FIELDS)})")
    name = fields.get("name")
    if name is None:
        problems.append(f"{where}: 'name' is missing")
    elif not isinstance(name, str) or len(name) > 64 or not NAME_RE.match(name):
        problems.append(f"{where}: 'name' {shown(name)} must be 1-64 characters of a-z, 0-9 and '-', "
                        "with no leading, trailing or double '-'")
    elif name != folder:
        problems.append(f"{where}: 'name' is {shown(name)} but the folder is {shown(folder)}: they must be the same")
    description = fields.get("description")
    if description is None:
        problems.append(f"{where}: 'description' is missing (what the skill does and when to use it)")
    elif not isinstance(description, str) or not description.strip():
        problems.append(f"{where}: 'description' must be text (what the skill does and when to use it)")
    elif len(description) > 1024:
        problems.append(f"{where}: 'description' is {len(description)} characters; at most 1024")
    for key in ("license", "allowed-tools"):
        if key in fields and not isinstance(fields[key], str):
            problems.append(f"{where}: {shown(key)} must be text, not {shown(fields[key])}")
    if "compatibility" in fields:
        compatibility = fields["compatibility"]
        if not isinstance(compatibility, str) or not compatibility.strip():
            problems.append(f"{where}: 'compatibility' must be text")
        elif len(compatibility) > 500:
            problems.append(f"{where}: 'compatibility' is {len(compatibility)} characters; at most 500")
    if "metadata" in fields:
        metadata = fields["metadata"]
        if not isinstance(metadata, dict):
            problems.append(f"{where}: 'metadata' must be a map of text to text")
        else:
            for key, value in metadata.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    problems.append(f"{where}: 'metadata' must map text to text; {shown(key)}: {shown(value)} does not")
    return problems, (None if problems else {k: fields[k] for k in FIELDS if k in fields})


def check_tree(entries, read):
    """Problems and valid skills of a repo tree.

    ENTRIES: (name, kind) of the top level, kind "dir", "file" or "link"; READ(folder): the kind
    and bytes of FOLDER/SKILL.md, or (None, None) when there is none.
    """
    problems, skills = [], []
    for name, kind in sorted(entries):
        if name.startswith(".") or kind != "dir":
            continue
        skill_kind, data = read(name)
        if skill_kind is None:
            problems.append(f"{name}/: no {SKILL_FILE} (every top-level folder is a skill and needs one)")
        elif skill_kind != "file":
            problems.append(f"{name}/{SKILL_FILE}: is a {skill_kind}, not a file")
        else:
            found, fields = check_skill(name, data)
            problems += found
            if fields is not None:
                skills.append(fields)
    return problems, skills


GIT_KINDS = {"040000": "dir", "100644": "file", "100755": "file", "120000": "link", "160000": "submodule"}


def git(git_dir, *args, data=None):
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], input=data, capture_output=True, check=True).stdout


def check_commit(git_dir, rev):
    """check_tree for commit REV of the repo at GIT_DIR (objects read with one cat-file --batch)."""
    def ls(treeish):
        out = []
        for record in git(git_dir, "ls-tree", "-z", treeish).split(b"\0"):
            if record:
                meta, name = record.split(b"\t", 1)
                out.append((name.decode("utf-8", "replace"), GIT_KINDS.get(meta.split(b" ")[0].decode(), "other"), meta.split(b" ")[2].decode()))
        return out

    top = ls(rev)
    folders = [name for name, kind, _ in top if kind == "dir" and not name.startswith(".")]
    skill_files = {}
    if folders:
        # Each folder's SKILL.md entry, if any: one ls-tree with every path.
        for record in git(git_dir, "ls-tree", "-z", rev, "--", *[f"{f}/{SKILL_FILE}" for f in folders]).split(b"\0"):
            if record:
                meta, path = record.split(b"\t", 1)
                mode, _, oid = meta.decode().split(" ")
                skill_files[path.decode("utf-8", "replace").split("/")[0]] = (GIT_KINDS.get(mode, "other"), oid)
    blobs = {}
    wanted = [oid for kind, oid in skill_files.values() if kind == "file"]
    if wanted:
        out = git(git_dir, "cat-file", "--batch", data=("\n".join(wanted) + "\n").encode())
        at = 0
        for oid in wanted:
            header_end = out.index(b"\n", at)
            size = int(out[at:header_end].split(b" ")[2])
            blobs[oid] = out[header_end + 1:header_end + 1 + size]
            at = header_end + 1 + size + 1

    def read(folder):
        if folder not in skill_files:
            return None, None
        kind, oid = skill_files[folder]
        return kind, blobs.get(oid)

    return check_tree([(name, kind) for name, kind, _ in top], read)
