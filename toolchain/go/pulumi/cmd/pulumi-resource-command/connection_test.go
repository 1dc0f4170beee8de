package main

// Conformance tests for the SSH connection of remote resources. Each mirrors pulumi-command
// v1.2.1, provider/pkg/provider/remote/connection.go (or commandOutputs.go where said), run
// against the in-process server of sshserver_test.go.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"sparks/toolchain/pulumi/internal/provutil"
)

// recordingHost keeps what would be sent to the engine.
type recordingHost struct {
	mu      sync.Mutex
	entries []logEntry
}

type logEntry struct {
	sev    diag.Severity
	status bool
	urn    resource.URN
	msg    string
}

func (h *recordingHost) Log(_ context.Context, sev diag.Severity, urn resource.URN, msg string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries = append(h.entries, logEntry{sev, false, urn, msg})
	return nil
}

func (h *recordingHost) LogStatus(_ context.Context, sev diag.Severity, urn resource.URN, msg string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries = append(h.entries, logEntry{sev, true, urn, msg})
	return nil
}

func (h *recordingHost) messages(sev diag.Severity, status bool) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.entries {
		if e.sev == sev && e.status == status {
			out = append(out, e.msg)
		}
	}
	return out
}

const testURN = resource.URN("urn:pulumi:dev::sparks::command:remote:Command::cmd")

func newRecordingLog() (*recordingHost, resourceLog) {
	h := &recordingHost{}
	return h, resourceLog{host: h, urn: testURN}
}

// connectionTo builds a connection's properties for srv, as the SDK sends them, plus extra.
func connectionTo(srv *sshServer, extra map[string]any) map[string]any {
	c := map[string]any{"host": srv.Host(), "port": srv.Port(), "user": "tester"}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func propsOf(m map[string]any) provutil.Props {
	return provutil.Props{M: resource.NewPropertyMapFromMap(m)}
}

// runOn runs cmd over conn and returns its stdout.
func runOn(t *testing.T, log resourceLog, conn map[string]any, cmd string, env map[string]string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := runRemote(context.Background(), log, propsOf(conn), cmd, env, "", &stdout, &stderr)
	return stdout.String(), err
}

// keyServer starts a server that accepts one fresh client key; it returns the key's PEM text.
func keyServer(t *testing.T, opts sshServerOptions) (*sshServer, string) {
	t.Helper()
	t.Setenv("SSH_AUTH_SOCK", "") // the developer's agent must not take part
	key, pub := newClientKey(t)
	opts.AuthorizedKeys = append(opts.AuthorizedKeys, pub)
	return startSSHServer(t, opts), key
}

// connection.go SSHConfig: a pinned hostKey restricts HostKeyAlgorithms to that key's type, so a
// server with several host keys presents the pinned one (x/crypto would otherwise pick ECDSA or
// RSA before ed25519, and the check would fail with "host key mismatch").
func TestPinnedHostKeyNegotiatesItsType(t *testing.T) {
	// RSAWithSHA1: upstream asks for "ssh-rsa" itself; see TestPinnedRSAHostKeyNeedsSHA1Signatures.
	srv, key := keyServer(t, sshServerOptions{RSAWithSHA1: true})
	for _, keyType := range []string{hostKeyEd25519, hostKeyECDSA, hostKeyRSA} {
		t.Run(keyType, func(t *testing.T) {
			_, log := newRecordingLog()
			out, err := runOn(t, log, connectionTo(srv, map[string]any{
				"privateKey": key, "hostKey": srv.HostKey(keyType), "dialErrorLimit": 0.0,
			}), "echo connected", nil)
			if err != nil || out != "connected\n" {
				t.Fatalf("pinned %s: out %q, err %v", keyType, out, err)
			}
		})
	}
}

// connection.go SSHConfig sets HostKeyAlgorithms to publicKey.Type(), which is "ssh-rsa" (SHA-1
// signatures) for any RSA key. OpenSSH >= 8.8 no longer offers those by default, so upstream
// cannot connect to a stock sshd with a pinned RSA host key; the stand-in fails the same way.
func TestPinnedRSAHostKeyNeedsSHA1Signatures(t *testing.T) {
	srv, key := keyServer(t, sshServerOptions{}) // OpenSSH defaults: rsa-sha2-512/256 only
	_, log := newRecordingLog()
	_, err := runOn(t, log, connectionTo(srv, map[string]any{
		"privateKey": key, "hostKey": srv.HostKey(hostKeyRSA), "dialErrorLimit": 0.0,
	}), "true", nil)
	if err == nil || !strings.Contains(err.Error(), "ssh: no common algorithm for host key; we offered: [\"ssh-rsa\"]") {
		t.Fatalf("want upstream's negotiation failure, got %v", err)
	}
}

// connection.go SSHConfig: ssh.FixedHostKey; a key of the right type but another value fails.
func TestPinnedHostKeyMismatch(t *testing.T) {
	srv, key := keyServer(t, sshServerOptions{})
	other, _, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	otherPub, err := ssh.NewPublicKey(other)
	must(t, err)
	_, log := newRecordingLog()
	_, err = runOn(t, log, connectionTo(srv, map[string]any{
		"privateKey": key, "hostKey": string(ssh.MarshalAuthorizedKey(otherPub)), "dialErrorLimit": 0.0,
	}), "true", nil)
	if err == nil || err.Error() != "after 0 failed attempts: ssh: handshake failed: ssh: host key mismatch" {
		t.Fatalf("got %v", err)
	}
}

// connection.go SSHConfig: "failed to parse host key: %w".
func TestHostKeyParseError(t *testing.T) {
	srv, key := keyServer(t, sshServerOptions{})
	_, log := newRecordingLog()
	_, err := runOn(t, log, connectionTo(srv, map[string]any{"privateKey": key, "hostKey": "not a key"}), "true", nil)
	if err == nil || !strings.HasPrefix(err.Error(), "failed to parse host key: ") {
		t.Fatalf("got %v", err)
	}
}

// connection.go dialWithRetry: dialErrorLimit N allows N+1 dials with retry.Until's backoff
// (100 ms, x1.5), logs "Dial i/N failed: retrying" as an info status before each retry, and fails
// with "after N failed attempts: <last error>".
func TestDialRetries(t *testing.T) {
	for _, tc := range []struct {
		limit    float64
		attempts int
		logs     []string
	}{
		{0, 1, nil},
		{1, 2, []string{"Dial 1/1 failed: retrying"}},
		{3, 4, []string{"Dial 1/3 failed: retrying", "Dial 2/3 failed: retrying", "Dial 3/3 failed: retrying"}},
	} {
		srv := startSSHServer(t, sshServerOptions{Down: "drop"})
		host, log := newRecordingLog()
		start := time.Now()
		_, err := runOn(t, log, connectionTo(srv, map[string]any{"password": "x", "dialErrorLimit": tc.limit}), "true", nil)
		elapsed := time.Since(start)
		want := "after " + strconv.Itoa(int(tc.limit)) + " failed attempts: ssh: handshake failed: "
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("limit %v: want %q..., got %v", tc.limit, want, err)
		}
		if got := srv.Accepted(); got != tc.attempts {
			t.Errorf("limit %v: %d dials, want %d", tc.limit, got, tc.attempts)
		}
		if got := host.messages(diag.Info, true); strings.Join(got, "|") != strings.Join(tc.logs, "|") {
			t.Errorf("limit %v: status messages %q, want %q", tc.limit, got, tc.logs)
		}
		// Waits: 100, 150, 225 ms: not the seconds of a doubling backoff from 1 s.
		if tc.limit == 3 && (elapsed < 450*time.Millisecond || elapsed > 3*time.Second) {
			t.Errorf("limit 3 took %v, want about 475ms", elapsed)
		}
	}
}

// connection.go: dialErrorLimit -1 retries without limit ("Dial i/inf failed: retrying") until the
// context ends; the context's error is returned.
func TestDialRetriesUnlimited(t *testing.T) {
	srv := startSSHServer(t, sshServerOptions{Down: "refuse"})
	host, log := newRecordingLog()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := runRemote(ctx, log, propsOf(connectionTo(srv, map[string]any{"password": "x", "dialErrorLimit": -1.0})),
		"true", nil, "", &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || err.Error() != context.DeadlineExceeded.Error() {
		t.Fatalf("got %v", err)
	}
	logs := host.messages(diag.Info, true)
	if len(logs) < 2 || logs[0] != "Dial 1/inf failed: retrying" || logs[1] != "Dial 2/inf failed: retrying" {
		t.Fatalf("status messages %q", logs)
	}
}

// connection.go: defaults dialErrorLimit 10, perDialTimeout 15 s (0: none), user root, port 22.
func TestConnectionDefaults(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	e := endpointFrom(propsOf(map[string]any{"host": "h"}))
	if e.dialErrorLimit != 10 || e.perDialTimeoutSeconds != 15 || e.user != "root" || e.address() != "h:22" {
		t.Fatalf("defaults: %+v", e)
	}
	cfg, closeAgent, err := e.clientConfig()
	must(t, err)
	closeAgent()
	if cfg.Timeout != 15*time.Second || len(cfg.Auth) != 0 || cfg.HostKeyAlgorithms != nil {
		t.Fatalf("config: %+v", cfg)
	}
	e = endpointFrom(propsOf(map[string]any{"host": "h", "perDialTimeout": 0.0}))
	cfg, _, err = e.clientConfig()
	must(t, err)
	if cfg.Timeout != 0 {
		t.Fatalf("perDialTimeout 0: timeout %v", cfg.Timeout)
	}
}

// connection.go Dial: the proxy is dialed with its own limit ("Dial proxy i/N"), and its errors
// are wrapped as "proxy: ...".
func TestProxyDialRetries(t *testing.T) {
	target, key := keyServer(t, sshServerOptions{})
	proxy := startSSHServer(t, sshServerOptions{Down: "drop"})
	host, log := newRecordingLog()
	conn := connectionTo(target, map[string]any{"privateKey": key, "dialErrorLimit": 0.0,
		"proxy": connectionTo(proxy, map[string]any{"privateKey": key, "dialErrorLimit": 1.0})})
	_, err := runOn(t, log, conn, "true", nil)
	if err == nil || !strings.HasPrefix(err.Error(), "proxy: after 1 failed attempts: ssh: handshake failed: ") {
		t.Fatalf("got %v", err)
	}
	if got := host.messages(diag.Info, true); len(got) != 1 || got[0] != "Dial proxy 1/1 failed: retrying" {
		t.Fatalf("status messages %q", got)
	}
	if proxy.Accepted() != 2 {
		t.Fatalf("%d proxy dials, want 2", proxy.Accepted())
	}
}

// connection.go Dial: through a proxy, each hop checks its own pinned host key.
func TestProxyConnects(t *testing.T) {
	target, key := keyServer(t, sshServerOptions{})
	_, proxyPub := newClientKey(t)
	proxy := startSSHServer(t, sshServerOptions{AuthorizedKeys: []ssh.PublicKey{proxyPub}, Password: "jump"})
	_, log := newRecordingLog()
	conn := connectionTo(target, map[string]any{"privateKey": key, "hostKey": target.HostKey(hostKeyEd25519),
		"proxy": connectionTo(proxy, map[string]any{"password": "jump", "hostKey": proxy.HostKey(hostKeyECDSA)})})
	out, err := runOn(t, log, conn, "echo via proxy", nil)
	if err != nil || out != "via proxy\n" {
		t.Fatalf("out %q, err %v", out, err)
	}
}

// commandOutputs.go run: a refused environment variable logs an error diagnostic and fails with
// `could not set environment variable "X": ssh: setenv failed`, before the command runs.
func TestRemoteEnvironmentRefused(t *testing.T) {
	srv, key := keyServer(t, sshServerOptions{AcceptEnv: []string{"ALLOWED"}})
	dir := t.TempDir()
	host, log := newRecordingLog()
	_, err := runOn(t, log, connectionTo(srv, map[string]any{"privateKey": key}),
		"touch "+filepath.Join(dir, "ran"), map[string]string{"REFUSED": "x"})
	if err == nil || err.Error() != `could not set environment variable "REFUSED": ssh: setenv failed` {
		t.Fatalf("got %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "ran")); statErr == nil {
		t.Fatal("the command ran without its environment")
	}
	if errs := host.messages(diag.Error, false); len(errs) != 1 || !strings.HasPrefix(errs[0], "Unable to set 'REFUSED'. ") {
		t.Fatalf("error diagnostics %q", errs)
	}
}

// commandOutputs.go run: accepted variables are visible to the command.
func TestRemoteEnvironmentAccepted(t *testing.T) {
	srv, key := keyServer(t, sshServerOptions{AcceptEnv: []string{"GREETING"}})
	_, log := newRecordingLog()
	out, err := runOn(t, log, connectionTo(srv, map[string]any{"privateKey": key}),
		`echo "$GREETING"`, map[string]string{"GREETING": "hello there"})
	if err != nil || out != "hello there\n" {
		t.Fatalf("out %q, err %v", out, err)
	}
}

// commandOutputs.go run: PULUMI_COMMAND_STDOUT/STDERR are sent only when not empty, and a refusal
// is a warning: the command still runs.
func TestRemotePreviousOutputRefusedIsAWarning(t *testing.T) {
	srv, key := keyServer(t, sshServerOptions{})
	host, log := newRecordingLog()
	out, err := runOn(t, log, connectionTo(srv, map[string]any{"privateKey": key}), "echo ran",
		map[string]string{envPreviousStdout: "old", envPreviousStderr: ""})
	if err != nil || out != "ran\n" {
		t.Fatalf("out %q, err %v", out, err)
	}
	warnings := host.messages(diag.Warning, false)
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "Unable to set 'PULUMI_COMMAND_STDOUT'. ") {
		t.Fatalf("warnings %q", warnings)
	}
}

// startAgent serves an SSH agent holding signer on a fresh unix socket and returns its path.
func startAgent(t *testing.T, key any) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent") // short: unix socket paths are limited to ~100 bytes
	must(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	must(t, err)
	keyring := agent.NewKeyring()
	must(t, keyring.Add(agent.AddedKey{PrivateKey: key}))
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = agent.ServeAgent(keyring, c); _ = c.Close() }()
		}
	}()
	return sock
}

// connection_unix.go tryGetDefaultAgentSocket: SSH_AUTH_SOCK is used whenever it is set, after the
// key and the password. x/crypto tries each method name once, so the agent's keys ("publickey")
// are only offered when no privateKey is set: next to a password they log in, next to a refused
// key they are never tried.
func TestAgentAuthOrder(t *testing.T) {
	_, agentKey, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	agentPub, err := ssh.NewPublicKey(agentKey.Public())
	must(t, err)
	srv := startSSHServer(t, sshServerOptions{AuthorizedKeys: []ssh.PublicKey{agentPub}, Password: "right"})
	t.Setenv("SSH_AUTH_SOCK", startAgent(t, agentKey))
	_, log := newRecordingLog()
	out, err := runOn(t, log, connectionTo(srv, map[string]any{"password": "wrong", "dialErrorLimit": 0.0}),
		"echo agent", nil)
	if err != nil || out != "agent\n" {
		t.Fatalf("password and agent: out %q, err %v", out, err)
	}
	refusedKey, _ := newClientKey(t)
	_, err = runOn(t, log, connectionTo(srv, map[string]any{"privateKey": refusedKey, "dialErrorLimit": 0.0}),
		"true", nil)
	if err == nil || !strings.Contains(err.Error(), "ssh: unable to authenticate, attempted methods [none publickey]") {
		t.Fatalf("refused key and agent: got %v", err)
	}
}

// connection.go SSHConfig: an agent socket that cannot be dialed fails the connection even when a
// key is given (net.Dial's error, as is); agentSocketPath takes precedence over SSH_AUTH_SOCK.
func TestAgentSocketUnreachable(t *testing.T) {
	srv, key := keyServer(t, sshServerOptions{})
	missing := filepath.Join(t.TempDir(), "no-agent")
	t.Setenv("SSH_AUTH_SOCK", missing)
	_, log := newRecordingLog()
	_, err := runOn(t, log, connectionTo(srv, map[string]any{"privateKey": key}), "true", nil)
	if err == nil || err.Error() != "dial unix "+missing+": connect: no such file or directory" {
		t.Fatalf("got %v", err)
	}
	// A reachable agentSocketPath wins over the broken SSH_AUTH_SOCK.
	_, agentKey, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	out, err := runOn(t, log, connectionTo(srv, map[string]any{"privateKey": key,
		"agentSocketPath": startAgent(t, agentKey)}), "echo ok", nil)
	if err != nil || out != "ok\n" {
		t.Fatalf("with agentSocketPath: out %q, err %v", out, err)
	}
}

// connection.go SSHConfig: a privateKey that is set but empty is parsed like any other and fails
// ("ssh: no key found"); it does not fall back to the password or the agent.
func TestEmptyPrivateKey(t *testing.T) {
	srv := startSSHServer(t, sshServerOptions{Password: "pw"})
	t.Setenv("SSH_AUTH_SOCK", "")
	_, log := newRecordingLog()
	_, err := runOn(t, log, connectionTo(srv, map[string]any{"privateKey": "", "password": "pw"}), "true", nil)
	if err == nil || err.Error() != "ssh: no key found" {
		t.Fatalf("got %v", err)
	}
	out, err := runOn(t, log, connectionTo(srv, map[string]any{"password": "pw"}), "echo pw", nil)
	if err != nil || out != "pw\n" {
		t.Fatalf("password only: out %q, err %v", out, err)
	}
}

// Secrets in errors: a privateKey that does not parse gives x/crypto's error (as upstream), which
// never quotes the key's text.
func TestPrivateKeyErrorDoesNotLeakKey(t *testing.T) {
	srv := startSSHServer(t, sshServerOptions{})
	t.Setenv("SSH_AUTH_SOCK", "")
	_, log := newRecordingLog()
	for _, secret := range []string{
		"s3cr3t-not-a-key",
		"-----BEGIN OPENSSH PRIVATE KEY-----\nczNjcjN0LWJvZHk=\n-----END OPENSSH PRIVATE KEY-----\n",
		"-----BEGIN RSA PRIVATE KEY-----\nczNjcjN0LWJvZHk=\n-----END RSA PRIVATE KEY-----\n",
	} {
		_, err := runOn(t, log, connectionTo(srv, map[string]any{"privateKey": secret, "privateKeyPassword": "pw-s3cr3t"}), "true", nil)
		if err == nil {
			t.Fatal("want a parse error")
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "czNjcjN0") {
			t.Fatalf("error quotes the key: %v", err)
		}
	}
}
