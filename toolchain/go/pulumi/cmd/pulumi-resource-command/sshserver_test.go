package main

// An in-process SSH server for the remote resources' tests. It listens on 127.0.0.1 only and runs
// `exec` requests locally with /bin/sh -c, like sshd with a POSIX login shell, and serves the
// `sftp` subsystem on the local file system (remote paths are local paths, e.g. a t.TempDir()).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Host key types a test server can offer (the key formats of authorized_keys lines).
const (
	hostKeyEd25519 = ssh.KeyAlgoED25519
	hostKeyECDSA   = ssh.KeyAlgoECDSA256
	hostKeyRSA     = ssh.KeyAlgoRSA
)

type sshServerOptions struct {
	// HostKeys lists the host key types offered, in order (default: ed25519, ECDSA P-256, RSA 3072,
	// the three keys a stock Debian sshd generates).
	HostKeys []string
	// RSAWithSHA1 also offers the SHA-1 "ssh-rsa" signature for the RSA host key. OpenSSH >= 8.8
	// does not by default (only rsa-sha2-512 and rsa-sha2-256); x/crypto servers do.
	RSAWithSHA1 bool
	// AuthorizedKeys are the client keys accepted; Password, if set, is accepted too.
	AuthorizedKeys []ssh.PublicKey
	Password       string
	// AcceptEnv names the environment variables accepted from "env" requests (sshd's AcceptEnv);
	// others are refused.
	AcceptEnv []string
	// Down makes the server unreachable: "refuse" (nothing listens on the port) or "drop" (TCP
	// connections are accepted and closed at once, and counted in Accepted).
	Down string
}

type sshServer struct {
	t        *testing.T
	opts     sshServerOptions
	listener net.Listener
	addr     string
	hostKeys map[string]ssh.Signer
	config   *ssh.ServerConfig
	accepted atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn // closed at cleanup, so that a client left open cannot hang the test
}

// Fixed keys for the whole test binary: RSA generation is slow.
var (
	testKeysOnce sync.Once
	testKeys     map[string]any // key type -> crypto private key
)

func testPrivateKey(t *testing.T, keyType string) any {
	t.Helper()
	testKeysOnce.Do(func() {
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		must(t, err)
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		rk, err := rsa.GenerateKey(rand.Reader, 3072)
		must(t, err)
		testKeys = map[string]any{hostKeyEd25519: ed, hostKeyECDSA: ec, hostKeyRSA: rk}
	})
	k, ok := testKeys[keyType]
	if !ok {
		t.Fatalf("no test key of type %q", keyType)
	}
	return k
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newClientKey makes a fresh ed25519 client key: its OpenSSH PEM text and public key.
func newClientKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	must(t, err)
	sshPub, err := ssh.NewPublicKey(pub)
	must(t, err)
	return string(pem.EncodeToMemory(block)), sshPub
}

func startSSHServer(t *testing.T, opts sshServerOptions) *sshServer {
	t.Helper()
	s := &sshServer{t: t, opts: opts, hostKeys: map[string]ssh.Signer{}}
	s.config = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range opts.AuthorizedKeys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("unknown public key")
		},
	}
	if opts.Password != "" {
		s.config.PasswordCallback = func(_ ssh.ConnMetadata, pass []byte) (*ssh.Permissions, error) {
			if string(pass) == opts.Password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	keyTypes := opts.HostKeys
	if keyTypes == nil {
		keyTypes = []string{hostKeyEd25519, hostKeyECDSA, hostKeyRSA}
	}
	for _, kt := range keyTypes {
		signer, err := ssh.NewSignerFromKey(testPrivateKey(t, kt))
		must(t, err)
		if kt == hostKeyRSA && !opts.RSAWithSHA1 {
			signer, err = ssh.NewSignerWithAlgorithms(signer.(ssh.AlgorithmSigner),
				[]string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256})
			must(t, err)
		}
		s.hostKeys[kt] = signer
		s.config.AddHostKey(signer)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s.listener, s.addr = l, l.Addr().String()
	if opts.Down == "refuse" {
		_ = l.Close()
		return s
	}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(func() {
		_ = l.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// Addr is host:port; Host and Port split it for a connection's properties.
func (s *sshServer) Addr() string { return s.addr }
func (s *sshServer) Host() string { h, _, _ := net.SplitHostPort(s.addr); return h }
func (s *sshServer) Port() float64 {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return float64(n)
}

// Accepted counts the TCP connections accepted so far.
func (s *sshServer) Accepted() int { return int(s.accepted.Load()) }

// HostKey returns the authorized_keys line of the host key of type keyType.
func (s *sshServer) HostKey(keyType string) string {
	signer, ok := s.hostKeys[keyType]
	if !ok {
		s.t.Fatalf("the server has no %s host key", keyType)
	}
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

func (s *sshServer) acceptLoop() {
	defer s.wg.Done()
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		if s.opts.Down == "drop" {
			_ = conn.Close()
			continue
		}
		s.mu.Lock()
		s.conns = append(s.conns, conn)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.serveConn(conn) }()
	}
}

func (s *sshServer) serveConn(conn net.Conn) {
	sconn, chans, reqs, err := ssh.NewServerConn(conn, s.config)
	if err != nil {
		_ = conn.Close()
		return
	}
	defer func() { _ = sconn.Close() }()
	go ssh.DiscardRequests(reqs)
	var sessions sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() == "direct-tcpip" {
			s.forward(nc)
			continue
		}
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions and direct-tcpip")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		sessions.Add(1)
		go func() { defer sessions.Done(); s.serveSession(ch, chReqs) }()
	}
	sessions.Wait()
}

// sshString reads one SSH wire-format string (uint32 length, bytes) from b.
func sshString(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)-4) < uint64(n) {
		return "", nil, false
	}
	return string(b[4 : 4+n]), b[4+n:], true
}

func (s *sshServer) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer func() { _ = ch.Close() }()
	env := os.Environ()
	for req := range reqs {
		switch req.Type {
		case "env":
			name, rest, ok1 := sshString(req.Payload)
			value, _, ok2 := sshString(rest)
			accepted := ok1 && ok2 && slices.Contains(s.opts.AcceptEnv, name)
			if accepted {
				env = append(env, name+"="+value)
			}
			_ = req.Reply(accepted, nil)
		case "exec":
			cmd, _, ok := sshString(req.Payload)
			_ = req.Reply(ok, nil)
			if ok {
				s.exec(ch, cmd, env)
			}
			return
		case "subsystem":
			name, _, ok := sshString(req.Payload)
			ok = ok && name == "sftp"
			_ = req.Reply(ok, nil)
			if ok {
				if srv, err := sftp.NewServer(ch); err == nil {
					_ = srv.Serve()
					_ = srv.Close()
				}
			}
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

func (s *sshServer) exec(ch ssh.Channel, command string, env []string) {
	c := exec.Command("/bin/sh", "-c", command)
	c.Env = env
	c.Stdout = ch
	c.Stderr = ch.Stderr()
	stdin, err := c.StdinPipe()
	if err == nil {
		err = c.Start()
	}
	status := uint32(0)
	if err != nil {
		status = 127
	} else {
		go func() { _, _ = io.Copy(stdin, ch); _ = stdin.Close() }()
		err = c.Wait()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			status = uint32(exitErr.ExitCode())
		}
	}
	_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
}

// forward serves a "direct-tcpip" channel (a jump host's TCP forwarding), to loopback only.
func (s *sshServer) forward(nc ssh.NewChannel) {
	host, rest, ok := sshString(nc.ExtraData())
	if !ok || len(rest) < 4 || host != "127.0.0.1" {
		_ = nc.Reject(ssh.Prohibited, "only 127.0.0.1")
		return
	}
	port := binary.BigEndian.Uint32(rest)
	target, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		_ = target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	s.mu.Lock()
	s.conns = append(s.conns, target)
	s.mu.Unlock()
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _, _ = io.Copy(target, ch); _ = target.Close() }()
	go func() { defer s.wg.Done(); _, _ = io.Copy(ch, target); _ = ch.Close() }()
}
