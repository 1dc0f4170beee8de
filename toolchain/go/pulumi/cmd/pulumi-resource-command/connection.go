package main

// The SSH side of remote resources: client configuration, dialing (with retries and an optional
// proxy jump host) and running one command in a session. Behaviour follows pulumi-command v1.2.1,
// provider/pkg/provider/remote/{connection.go,connection_unix.go,commandOutputs.go}.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/retry"

	"sparks/toolchain/pulumi/internal/provutil"
)

// engineHost is the part of *provider.HostClient used for diagnostics (an interface so tests can
// record what would reach the engine).
type engineHost interface {
	Log(ctx context.Context, sev diag.Severity, urn resource.URN, msg string) error
	LogStatus(ctx context.Context, sev diag.Severity, urn resource.URN, msg string) error
}

// resourceLog sends diagnostics about one resource to the engine, as upstream's per-resource
// logger (pulumi-go-provider's p.GetLogger) does. The zero value drops them.
type resourceLog struct {
	host engineHost
	urn  resource.URN
}

func (p *commandProvider) resourceLog(urn resource.URN) resourceLog {
	if p.host == nil {
		return resourceLog{urn: urn}
	}
	return resourceLog{host: p.host, urn: urn}
}

// log writes a diagnostic that stays in the final output; status one that only shows in the
// progress display.
func (l resourceLog) log(ctx context.Context, sev diag.Severity, msg string) {
	if l.host != nil {
		_ = l.host.Log(ctx, sev, l.urn, msg)
	}
}

func (l resourceLog) status(ctx context.Context, sev diag.Severity, msg string) {
	if l.host != nil {
		_ = l.host.LogStatus(ctx, sev, l.urn, msg)
	}
}

// Connection defaults, as upstream's schema sets them.
const (
	defaultUser           = "root"
	defaultPort           = 22
	defaultDialErrorLimit = 10 // -1: unlimited
	defaultPerDialTimeout = 15 // seconds; 0: no timeout
)

// sshEndpoint is one hop of a connection (the target, or its proxy). Optional strings are nil when
// unset: upstream treats a set empty string (privateKey: "") differently from an absent one.
type sshEndpoint struct {
	user, host            string
	port                  int
	password, privateKey  *string
	privateKeyPassword    *string
	agentSocketPath       *string
	hostKey               *string
	dialErrorLimit        int
	perDialTimeoutSeconds int
}

func optionalString(c provutil.Props, key string) *string {
	if !c.Has(key) {
		return nil
	}
	s := c.String(key, "")
	return &s
}

func endpointFrom(c provutil.Props) sshEndpoint {
	return sshEndpoint{
		user:                  c.String("user", defaultUser),
		host:                  c.String("host", ""),
		port:                  int(c.Number("port", defaultPort)),
		password:              optionalString(c, "password"),
		privateKey:            optionalString(c, "privateKey"),
		privateKeyPassword:    optionalString(c, "privateKeyPassword"),
		agentSocketPath:       optionalString(c, "agentSocketPath"),
		hostKey:               optionalString(c, "hostKey"),
		dialErrorLimit:        int(c.Number("dialErrorLimit", defaultDialErrorLimit)),
		perDialTimeoutSeconds: int(c.Number("perDialTimeout", defaultPerDialTimeout)),
	}
}

func (e sshEndpoint) address() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

// clientConfig builds the SSH client configuration of one hop. Auth methods are offered in the
// order key, password (plus keyboard-interactive with the same answer), agent. The agent is used
// whenever agentSocketPath or SSH_AUTH_SOCK is set, even next to a key or password. The returned
// function closes the agent connection.
func (e sshEndpoint) clientConfig() (*ssh.ClientConfig, func(), error) {
	noop := func() {}
	cfg := &ssh.ClientConfig{
		User:            e.user,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), //nolint:gosec // upstream: no hostKey, no check
		Timeout:         time.Duration(e.perDialTimeoutSeconds) * time.Second,
	}
	if e.hostKey != nil {
		pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*e.hostKey))
		if err != nil {
			return nil, noop, fmt.Errorf("failed to parse host key: %w", err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(pinned)
		// Only the pinned key's format is negotiated, else the server may present another of its
		// keys. Upstream passes the key type as is: "ssh-rsa" asks for SHA-1 RSA signatures only.
		cfg.HostKeyAlgorithms = []string{pinned.Type()}
	}
	if e.privateKey != nil {
		signer, err := e.parsePrivateKey()
		if err != nil {
			return nil, noop, err
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if e.password != nil {
		password := *e.password
		answerAll := func(_, _ string, questions []string, _ []bool) ([]string, error) {
			answers := make([]string, len(questions))
			for i := range answers {
				answers[i] = password
			}
			return answers, nil
		}
		cfg.Auth = append(cfg.Auth, ssh.Password(password), ssh.KeyboardInteractive(answerAll))
	}
	socket := e.agentSocketPath
	if socket == nil {
		if env := os.Getenv("SSH_AUTH_SOCK"); env != "" {
			socket = &env
		}
	}
	if socket == nil {
		return cfg, noop, nil
	}
	agentConn, err := net.Dial("unix", *socket)
	if err != nil {
		return nil, noop, err
	}
	cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(agentConn).Signers))
	return cfg, func() { _ = agentConn.Close() }, nil
}

// parsePrivateKey returns x/crypto's error as upstream does; those never quote the key.
func (e sshEndpoint) parsePrivateKey() (ssh.Signer, error) {
	if e.privateKeyPassword != nil {
		return ssh.ParsePrivateKeyWithPassphrase([]byte(*e.privateKey), []byte(*e.privateKeyPassword))
	}
	return ssh.ParsePrivateKey([]byte(*e.privateKey))
}

// dialWithRetries calls dial until it succeeds. A limit of N >= 0 allows N+1 attempts (upstream
// counts the first one apart); below 0 there is no limit. Between attempts it waits as the Pulumi
// SDK's retry.Until does (100 ms, times 1.5 each time, at most 5 s) and reports
// "<what> <attempt>/<limit> failed: retrying" as a status message.
func dialWithRetries[T any](
	ctx context.Context, log resourceLog, what string, limit int, dial func() (T, error),
) (T, error) {
	var result T
	var lastErr error
	limitText := strconv.Itoa(limit)
	if limit == -1 {
		limitText = "inf"
	}
	ok, _, err := retry.Until(ctx, retry.Acceptor{
		Accept: func(failedSoFar int, _ time.Duration) (bool, any, error) {
			result, lastErr = dial()
			if lastErr == nil {
				return true, nil, nil
			}
			attempt := failedSoFar + 1
			if limit >= 0 && attempt > limit {
				// Upstream reports the failures before this last attempt.
				return false, nil, fmt.Errorf("after %d failed attempts: %w", failedSoFar, lastErr)
			}
			log.status(ctx, diag.Info, fmt.Sprintf("%s %d/%s failed: retrying", what, attempt, limitText))
			return false, nil, nil
		},
	})
	switch {
	case err != nil:
		return result, err
	case !ok: // the context ended while waiting
		return result, ctx.Err()
	}
	return result, nil
}

// dialConnection connects to the connection's host, through its proxy when one is set. The
// returned function closes the client and everything opened for it.
func dialConnection(ctx context.Context, log resourceLog, conn provutil.Props) (*ssh.Client, func(), error) {
	target := endpointFrom(conn)
	cfg, closeAgent, err := target.clientConfig()
	if err != nil {
		return nil, nil, err
	}
	if !conn.Has("proxy") {
		client, err := dialWithRetries(ctx, log, "Dial", target.dialErrorLimit, func() (*ssh.Client, error) {
			return ssh.Dial("tcp", target.address(), cfg)
		})
		if err != nil {
			closeAgent()
			return nil, nil, err
		}
		return client, func() { _ = client.Close(); closeAgent() }, nil
	}

	closers := []func(){closeAgent}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*ssh.Client, func(), error) {
		closeAll()
		return nil, nil, fmt.Errorf("proxy: %w", err)
	}
	proxy := endpointFrom(conn.Object("proxy"))
	proxyCfg, closeProxyAgent, err := proxy.clientConfig()
	if err != nil {
		return fail(err)
	}
	closers = append(closers, closeProxyAgent)
	proxyClient, err := dialWithRetries(ctx, log, "Dial proxy", proxy.dialErrorLimit, func() (*ssh.Client, error) {
		return ssh.Dial("tcp", proxy.address(), proxyCfg)
	})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = proxyClient.Close() })
	// A TCP connection from the proxy to the target, then the target's SSH handshake over it; both
	// steps retry with the target's limit, under the names upstream logs.
	tunnel, err := dialWithRetries(ctx, log, "Dial from proxy", target.dialErrorLimit, func() (net.Conn, error) {
		return proxyClient.Dial("tcp", target.address())
	})
	if err != nil {
		return fail(err)
	}
	type handshake struct {
		conn  ssh.Conn
		chans <-chan ssh.NewChannel
		reqs  <-chan *ssh.Request
	}
	hs, err := dialWithRetries(ctx, log, "Dial", target.dialErrorLimit, func() (handshake, error) {
		c, chans, reqs, err := ssh.NewClientConn(tunnel, target.address(), cfg)
		return handshake{c, chans, reqs}, err
	})
	if err != nil {
		_ = tunnel.Close()
		return fail(err)
	}
	client := ssh.NewClient(hs.conn, hs.chans, hs.reqs)
	closers = append(closers, func() { _ = client.Close() })
	return client, closeAll, nil
}

// The previous outputs that update and delete pass in the environment (addPreviousOutputInEnv).
const (
	envPreviousStdout = "PULUMI_COMMAND_STDOUT"
	envPreviousStderr = "PULUMI_COMMAND_STDERR"
)

func isPreviousOutputVar(name string) bool {
	return name == envPreviousStdout || name == envPreviousStderr
}

func setenvRefusedMessage(name string) string {
	return fmt.Sprintf(`Unable to set '%s'. This only works if your SSH server is configured to accept
	these variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the remote host, you could
	prefix the command itself with the variables in the form 'VAR=value command'`, name)
}

// setRemoteEnv sends env as SSH "env" requests. A refused user variable fails the command (with
// an error diagnostic); the previous outputs are sent only when not empty, and a refusal of those
// is only a warning.
func setRemoteEnv(ctx context.Context, log resourceLog, session *ssh.Session, env map[string]string) error {
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	// User variables first, as upstream; sorted, so that the same variable is reported each time.
	sort.Slice(names, func(i, j int) bool {
		if a, b := isPreviousOutputVar(names[i]), isPreviousOutputVar(names[j]); a != b {
			return b
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		value := env[name]
		previousOutput := isPreviousOutputVar(name)
		if previousOutput && value == "" {
			continue
		}
		err := session.Setenv(name, value)
		switch {
		case err == nil:
		case previousOutput:
			log.log(ctx, diag.Warning, setenvRefusedMessage(name))
		default:
			log.log(ctx, diag.Error, setenvRefusedMessage(name))
			return fmt.Errorf("could not set environment variable %q: %w", name, err)
		}
	}
	return nil
}

// runRemote runs cmd on the connection's host. A failure of the command itself is an
// *ssh.ExitError or *ssh.ExitMissingError; any other error happened before it ran.
func runRemote(
	ctx context.Context, log resourceLog, conn provutil.Props, cmd string, env map[string]string, stdin string,
	stdout, stderr io.Writer,
) error {
	client, closeAll, err := dialConnection(ctx, log, conn)
	if err != nil {
		return err
	}
	defer closeAll()
	session, err := client.NewSession()
	if err != nil {
		return err
	}
	defer func() { _ = session.Close() }()
	if err := setRemoteEnv(ctx, log, session, env); err != nil {
		return err
	}
	if stdin != "" {
		session.Stdin = strings.NewReader(stdin)
	}
	session.Stdout = stdout
	session.Stderr = stderr
	return session.Run(cmd)
}
