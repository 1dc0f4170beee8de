package provutil

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The engine gives every plugin a stdin pipe that it never writes to or closes
// (sdk/go/common/resource/plugin/plugin.go, newPlugin: cmd.StdinPipe()); EOF on it means the
// engine is gone. These tests assert that WatchEngine reacts to that EOF and to nothing else.

func TestWatchEngineCallsOnGoneAtEOFOnly(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	gone := make(chan struct{})
	if !WatchEngine(r, func() { close(gone) }) {
		t.Fatal("a pipe on stdin must be watched")
	}
	// Data from the engine side is not a sign of its death.
	if _, err := w.Write([]byte("noise\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gone:
		t.Fatal("onGone ran while the engine still holds the pipe")
	case <-time.After(200 * time.Millisecond):
	}
	w.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("onGone did not run after EOF")
	}
}

func TestWatchEngineIgnoresNonPipeStdin(t *testing.T) {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if WatchEngine(devNull, func() { t.Error("onGone ran for /dev/null") }) {
		t.Fatal("/dev/null (a plugin started by hand) must not be watched")
	}
	time.Sleep(100 * time.Millisecond)
}

// TestExitWhenEngineGoneExitsProcess runs this test binary as a "plugin" whose stdin is a pipe, as
// the engine starts it, closes the pipe as a dying engine would, and asserts that the process runs
// onGone and exits promptly.
func TestExitWhenEngineGoneExitsProcess(t *testing.T) {
	if os.Getenv("PROVUTIL_ENGINEWATCH_CHILD") == "1" {
		ExitWhenEngineGone(func() { os.Stdout.WriteString("cleaned up\n") })
		os.Stdout.WriteString("ready\n")
		time.Sleep(time.Minute) // a plugin that would otherwise serve forever
		os.Exit(3)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExitWhenEngineGoneExitsProcess$")
	cmd.Env = append(os.Environ(), "PROVUTIL_ENGINEWATCH_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("child did not start: %q", lines.Text())
	}
	stdin.Close()
	exited := make(chan error, 1)
	var rest strings.Builder
	go func() {
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("child exit: %v (want status 0)", err)
		}
		if rest.String() != "cleaned up\n" {
			t.Fatalf("onGone output %q", rest.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("child still alive 5 s after its stdin closed")
	}
}
