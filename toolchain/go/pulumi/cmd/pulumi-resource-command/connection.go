package main

// The SSH side of remote resources: client configuration, dialing (with retries and an optional
// proxy jump host) and running one command in a session.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"sparks/toolchain/pulumi/internal/provutil"
)

// sshConfig builds the client configuration for one hop of a connection.
func sshConfig(c provutil.Props) (*ssh.ClientConfig, func(), error) {
	cleanup := func() {}
	var auths []ssh.AuthMethod
	if key := c.String("privateKey", ""); key != "" {
		var signer ssh.Signer
		var err error
		if pass := c.String("privateKeyPassword", ""); pass != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(key), []byte(pass))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(key))
		}
		if err != nil {
			return nil, cleanup, fmt.Errorf("could not parse the connection's privateKey: %w", err)
		}
		auths = append(auths, ssh.PublicKeys(signer))
	}
	if pass := c.String("password", ""); pass != "" {
		auths = append(auths, ssh.Password(pass), ssh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pass
				}
				return answers, nil
			}))
	}
	sock := c.String("agentSocketPath", "")
	if sock == "" && len(auths) == 0 {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, cleanup, fmt.Errorf("could not connect to the SSH agent at %s: %w", sock, err)
		}
		cleanup = func() { _ = conn.Close() }
		auths = append(auths, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	hostKeyCallback := ssh.InsecureIgnoreHostKey() //nolint:gosec // upstream behaviour when hostKey is unset
	if hk := c.String("hostKey", ""); hk != "" {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hk))
		if err != nil {
			return nil, cleanup, fmt.Errorf("could not parse the connection's hostKey: %w", err)
		}
		hostKeyCallback = ssh.FixedHostKey(pub)
	}
	return &ssh.ClientConfig{
		User:            c.String("user", "root"),
		Auth:            auths,
		HostKeyCallback: hostKeyCallback,
		Timeout:         time.Duration(c.Number("perDialTimeout", 15)) * time.Second,
	}, cleanup, nil
}

func hostPort(c provutil.Props) string {
	return net.JoinHostPort(c.String("host", ""), strconv.Itoa(int(c.Number("port", 22))))
}

// dialRetry calls dial until it succeeds or dialErrorLimit attempts failed (-1: no limit).
func dialRetry(ctx context.Context, c provutil.Props, what string, dial func() (*ssh.Client, error)) (*ssh.Client, error) {
	limit := int(c.Number("dialErrorLimit", 10))
	var lastErr error
	wait := time.Second
	for attempt := 1; limit < 0 || attempt <= limit; attempt++ {
		client, err := dial()
		if err == nil {
			return client, nil
		}
		lastErr = err
		if limit >= 0 && attempt == limit {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		if wait < 8*time.Second {
			wait *= 2
		}
	}
	return nil, fmt.Errorf("could not connect to %s: %w", what, lastErr)
}

// dialConnection connects to the connection's host, through its proxy if one is set.
func dialConnection(ctx context.Context, c provutil.Props) (*ssh.Client, func(), error) {
	cfg, cleanup, err := sshConfig(c)
	if err != nil {
		return nil, cleanup, err
	}
	target := hostPort(c)
	if !c.Has("proxy") {
		client, err := dialRetry(ctx, c, target, func() (*ssh.Client, error) {
			return ssh.Dial("tcp", target, cfg)
		})
		if err != nil {
			cleanup()
			return nil, func() {}, err
		}
		return client, func() { _ = client.Close(); cleanup() }, nil
	}
	pc := c.Object("proxy")
	pcfg, pcleanup, err := sshConfig(pc)
	if err != nil {
		cleanup()
		return nil, func() {}, err
	}
	proxyAddr := hostPort(pc)
	proxy, err := dialRetry(ctx, pc, "proxy "+proxyAddr, func() (*ssh.Client, error) {
		return ssh.Dial("tcp", proxyAddr, pcfg)
	})
	if err != nil {
		cleanup()
		pcleanup()
		return nil, func() {}, err
	}
	client, err := dialRetry(ctx, c, target+" via "+proxyAddr, func() (*ssh.Client, error) {
		conn, err := proxy.Dial("tcp", target)
		if err != nil {
			return nil, err
		}
		cc, chans, reqs, err := ssh.NewClientConn(conn, target, cfg)
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		return ssh.NewClient(cc, chans, reqs), nil
	})
	if err != nil {
		_ = proxy.Close()
		cleanup()
		pcleanup()
		return nil, func() {}, err
	}
	return client, func() { _ = client.Close(); _ = proxy.Close(); cleanup(); pcleanup() }, nil
}

func runRemote(
	ctx context.Context, conn provutil.Props, cmd string, env map[string]string, stdin string,
	stdout, stderr io.Writer,
) error {
	client, closeAll, err := dialConnection(ctx, conn)
	if err != nil {
		return err
	}
	defer closeAll()
	return runSession(client, cmd, env, stdin, stdout, stderr, nil)
}

func runSession(
	client *ssh.Client, cmd string, env map[string]string, stdin string, stdout, stderr io.Writer, in io.Reader,
) error {
	session, err := client.NewSession()
	if err != nil {
		return err
	}
	defer func() { _ = session.Close() }()
	for k, v := range env {
		// As upstream: sent as "env" requests, which the server may refuse (AcceptEnv); refusal is ignored.
		_ = session.Setenv(k, v)
	}
	switch {
	case in != nil:
		session.Stdin = in
	case stdin != "":
		session.Stdin = strings.NewReader(stdin)
	}
	session.Stdout = stdout
	session.Stderr = stderr
	return session.Run(cmd)
}
