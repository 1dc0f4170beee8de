package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

const fakeRunModule = "/fake/node_modules/@pulumi/pulumi/cmd/run/index.js"

// fakeNode puts a `node` first on PATH that answers the module lookup (`node -e`) with
// fakeRunModule and otherwise records its arguments, PULUMI_* environment and PID in dir, writes
// $FAKE_STDERR to stderr, then sleeps $FAKE_SLEEP seconds (as the same process) or exits $FAKE_EXIT.
func fakeNode(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	writeScript(t, dir, "node", `case "$1" in -e) echo `+fakeRunModule+`; exit 0;; esac
printf '%s\n' "$@" > `+dir+`/args
env | grep '^PULUMI_' | sort > `+dir+`/env
if [ -n "$FAKE_STDERR" ]; then printf '%s\n' "$FAKE_STDERR" >&2; fi
echo $$ > `+dir+`/pid.tmp && mv `+dir+`/pid.tmp `+dir+`/pid
if [ -n "$FAKE_SLEEP" ]; then exec sleep "$FAKE_SLEEP"; fi
exit ${FAKE_EXIT:-0}
`)
	pathWithFakes(t, dir)
	return dir
}

func runRequest(t *testing.T, options map[string]any) *pulumirpc.RunRequest {
	t.Helper()
	dir := t.TempDir()
	return &pulumirpc.RunRequest{
		MonitorAddress:   "127.0.0.1:1111",
		Project:          "proj",
		Stack:            "dev",
		Organization:     "org",
		Parallel:         0,
		DryRun:           true,
		Config:           map[string]string{"proj:size": "3", "aws:region": "eu-west-1"},
		ConfigSecretKeys: []string{"proj:size"},
		Info:             programInfo(t, dir, options),
		Args:             []string{"extra"},
	}
}

// Mirrors execRuntime / constructArguments / constructConfig of upstream main.go: nodeargs are
// split as a shell would (shlex: quotes kept together), then the run module and its flags in
// upstream's order (--parallel even when 0, --pwd is the program directory), the entry point and
// the program's arguments; config keys are passed in the "<ns>:config:<name>" form.
func TestRunPassesArgumentsAndEnvironmentAsUpstream(t *testing.T) {
	dir := fakeNode(t)
	req := runRequest(t, map[string]any{
		"nodeargs": `--max-old-space-size=4096 --require "./my hooks.js" --title='a b'`,
		"tsconfig": "tsconfig.build.json",
	})
	resp, err := newLanguageHost("127.0.0.1:2222", "").Run(context.Background(), req)
	if err != nil || resp.GetError() != "" || resp.GetBail() {
		t.Fatalf("Run: %v %v", resp, err)
	}
	progDir := req.GetInfo().GetProgramDirectory()
	want := []string{
		"--max-old-space-size=4096", "--require", "./my hooks.js", "--title=a b",
		fakeRunModule,
		"--monitor", "127.0.0.1:1111", "--engine", "127.0.0.1:2222", "--organization", "org",
		"--project", "proj", "--root-directory", progDir, "--stack", "dev", "--pwd", progDir,
		"--dry-run", "--parallel", "0", ".", "extra",
	}
	if got := strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(dir, "args")), "\n"), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("args\n got %q\nwant %q", got, want)
	}
	env := readFile(t, filepath.Join(dir, "env"))
	for _, line := range []string{
		`PULUMI_CONFIG={"aws:config:region":"eu-west-1","proj:config:size":"3"}`,
		`PULUMI_CONFIG_SECRET_KEYS=["proj:size"]`,
		"PULUMI_NODEJS_TSCONFIG_PATH=tsconfig.build.json",
		"PULUMI_NODEJS_TYPESCRIPT=true",
	} {
		if !strings.Contains(env, line+"\n") {
			t.Errorf("environment lacks %s:\n%s", line, env)
		}
	}
}

// Upstream reports shlex's error for an unterminated quote, and type errors of the options.
func TestRunReportsBadOptions(t *testing.T) {
	fakeNode(t)
	h := newLanguageHost("127.0.0.1:2222", "")
	for _, c := range []struct {
		options map[string]any
		want    string
	}{
		{map[string]any{"nodeargs": `--require "unterminated`}, "EOF found when expecting closing quote"},
		{map[string]any{"typescript": "yes"}, "typescript option must be a boolean"},
		{map[string]any{"nodeargs": 3.0}, "nodeargs option must be a string"},
	} {
		resp, err := h.Run(context.Background(), runRequest(t, c.options))
		if err != nil || resp.GetError() != c.want {
			t.Errorf("%v: got %q, %v; want %q", c.options, resp.GetError(), err, c.want)
		}
	}
}

// Upstream's exit handling: 32 means the program already told the user (bail), other codes are
// reported, and an out-of-memory report on stderr adds the nodeargs hint.
func TestRunExitCodes(t *testing.T) {
	fakeNode(t)
	h := newLanguageHost("127.0.0.1:2222", "")
	t.Setenv("FAKE_EXIT", "32")
	if resp, _ := h.Run(context.Background(), runRequest(t, nil)); !resp.GetBail() || resp.GetError() != "" {
		t.Errorf("exit 32: %v", resp)
	}
	t.Setenv("FAKE_EXIT", "3")
	if resp, _ := h.Run(context.Background(), runRequest(t, nil)); resp.GetError() != "Program exited with non-zero exit code: 3" {
		t.Errorf("exit 3: %v", resp)
	}
	t.Setenv("FAKE_STDERR", "<--- Last few GCs --->")
	resp, _ := h.Run(context.Background(), runRequest(t, nil))
	if resp.GetError() != "Program exited with non-zero exit code: 3. "+oomMessage {
		t.Errorf("oom: %v", resp)
	}
}

// Upstream Run fails without an engine address (a host started by hand must get Handshake first).
func TestRunNeedsEngineAddress(t *testing.T) {
	fakeNode(t)
	_, err := newLanguageHost("", "").Run(context.Background(), runRequest(t, nil))
	if err == nil || err.Error() != "when debugging or running explicitly, must call Handshake before Run" {
		t.Fatalf("got %v", err)
	}
}

// waitForPID waits for the fake node to record its PID.
func waitForPID(t *testing.T, dir string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the program did not start")
	return 0
}

// processGone reports whether pid has exited (a zombie waiting for its reaper counts as gone).
func processGone(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false // no /proc (not Linux): alive, as kill(pid, 0) said
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

// Mirrors upstream Cancel (host.cancelFunc) and execRuntime's cmd.Cancel: the running program
// gets SIGINT and Run returns; a Run after Cancel does not start the program.
func TestCancelInterruptsRunningProgram(t *testing.T) {
	dir := fakeNode(t)
	t.Setenv("FAKE_SLEEP", "60")
	h := newLanguageHost("127.0.0.1:2222", "")
	done := make(chan *pulumirpc.RunResponse, 1)
	go func() {
		resp, _ := h.Run(context.Background(), runRequest(t, nil))
		done <- resp
	}()
	pid := waitForPID(t, dir)
	if _, err := h.Cancel(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-done:
		if resp.GetError() != "Program exited with non-zero exit code: -1" {
			t.Errorf("got %v", resp)
		}
	case <-time.After(programStopDelay + 3*time.Second):
		t.Fatal("Run still running after Cancel")
	}
	if !processGone(pid) {
		t.Fatal("program still alive")
	}
	resp, _ := h.Run(context.Background(), runRequest(t, nil))
	if !strings.HasPrefix(resp.GetError(), "Problem executing program (could not run language executor): context canceled") {
		t.Fatalf("Run after Cancel: %v", resp)
	}
}

// Mirrors execRuntime's context.AfterFunc(ctx, cmdCancel): when the engine hangs up on the Run
// request (its connection drops), the program is interrupted.
func TestRunStopsProgramWhenRequestEnds(t *testing.T) {
	dir := fakeNode(t)
	t.Setenv("FAKE_SLEEP", "60")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_, _ = newLanguageHost("127.0.0.1:2222", "").Run(ctx, runRequest(t, nil))
		close(done)
	}()
	pid := waitForPID(t, dir)
	cancel()
	select {
	case <-done:
	case <-time.After(programStopDelay + 3*time.Second):
		t.Fatal("Run still running after its request ended")
	}
	if !processGone(pid) {
		t.Fatal("program still alive")
	}
}
