package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// startFakeEngine serves the engine's gRPC health service on loopback, as the CLI does for plugins.
func startFakeEngine(t *testing.T) (addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), srv.Stop
}

// buildLanguageHost builds this package's binary into a temporary directory.
func buildLanguageHost(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pulumi-language-nodejs")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startedHost is a language host started the way the engine starts plugins (newPlugin in
// sdk/go/common/resource/plugin/plugin.go): engine address as the argument, stdin a pipe, the
// port read from the first line of stdout.
type startedHost struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	client pulumirpc.LanguageRuntimeClient
	conn   *grpc.ClientConn
	exited chan error
}

func startLanguageHost(t *testing.T, bin, engineAddr string) *startedHost {
	t.Helper()
	cmd := exec.Command(bin, engineAddr)
	cmd.Stderr = os.Stderr
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
	h := &startedHost{cmd: cmd, stdin: stdin, exited: make(chan error, 1)}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewReader(stdout)
	port, err := lines.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the port: %v", err)
	}
	go func() {
		_, _ = io.Copy(io.Discard, lines) // the program's output
		h.exited <- cmd.Wait()
	}()
	h.conn, err = grpc.NewClient("127.0.0.1:"+strings.TrimSpace(port),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.conn.Close() })
	h.client = pulumirpc.NewLanguageRuntimeClient(h.conn)
	return h
}

// startProgram calls Run with a program (the fake node) that runs until it is stopped.
func (h *startedHost) startProgram(t *testing.T, nodeDir string) int {
	t.Helper()
	go func() { _, _ = h.client.Run(context.Background(), runRequest(t, nil)) }()
	return waitForPID(t, nodeDir)
}

// The reported bug: after `kill -9` of the engine during `up`, the language host and its node
// program stayed alive (15+ minutes). Upstream notices through the 5-minute health check
// (rpcutil.Healthcheck in main of upstream main.go); this host also watches the engine's stdin
// pipe, which the kernel closes the moment the engine dies. With the Run connection left open
// and the fake engine still answering, only the stdin EOF can be what stops them here.
func TestLanguageHostExitsWhenEngineStdinCloses(t *testing.T) {
	h, pid, _ := hostRunningAProgram(t)
	h.stdin.Close()
	assertStopped(t, h, pid)
}

// hostRunningAProgram starts the built language host against a fake engine, running a fake node
// program that sleeps for 10 minutes; it returns the host, the program's PID and a way to stop
// the fake engine.
func hostRunningAProgram(t *testing.T) (*startedHost, int, func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildLanguageHost(t)
	nodeDir := fakeNode(t)
	t.Setenv("FAKE_SLEEP", "600")
	engineAddr, stopEngine := startFakeEngine(t)
	h := startLanguageHost(t, bin, engineAddr)
	return h, h.startProgram(t, nodeDir), stopEngine
}

// The whole engine death: stdin closes, the engine's connection drops and its server is gone.
func TestLanguageHostExitsWhenEngineDies(t *testing.T) {
	h, pid, stopEngine := hostRunningAProgram(t)

	stopEngine()
	_ = h.conn.Close()
	h.stdin.Close()
	assertStopped(t, h, pid)
}

// assertStopped asserts that the host exits, and its program with it, within a few seconds
// (well inside the 30 s the engine-death requirement allows).
func assertStopped(t *testing.T, h *startedHost, programPID int) {
	t.Helper()
	select {
	case err := <-h.exited:
		if err != nil {
			t.Errorf("language host exit: %v (want status 0)", err)
		}
	case <-time.After(programStopDelay + 5*time.Second):
		t.Fatal("language host still alive after the engine went away")
	}
	deadline := time.Now().Add(2 * time.Second)
	for !processGone(programPID) {
		if time.Now().After(deadline) {
			t.Fatal("the node program outlived the language host")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
