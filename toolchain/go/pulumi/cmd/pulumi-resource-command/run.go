package main

// Running a command, locally or over SSH, as upstream's local/commandOutputs.go run and
// remote/commandOutputs.go (*CommandOutputs).run do.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"sparks/toolchain/pulumi/internal/provutil"
)

// commandOutput collects what a command writes: stdout and stderr apart (the outputs), both in
// arrival order (the error message), and the lines of the logged streams, sent as they complete.
type commandOutput struct {
	stdout, stderr bytes.Buffer
	mu             sync.Mutex
	combined       bytes.Buffer
	pending        bytes.Buffer // the logged streams' current, incomplete line
	logLine        func(string)
	logStdout      bool
	logStderr      bool
}

// newCommandOutput logs stdout and/or stderr as upstream's Logging.ShouldLogStdout/ShouldLogStderr
// decide: unset logs both; "stdout", "stderr", "stdoutAndStderr" as named; anything else neither.
func newCommandOutput(logging resource.PropertyValue, logLine func(string)) *commandOutput {
	mode, set := "", false
	if v, _ := peelSecret(logging); v.IsString() {
		mode, set = v.StringValue(), true
	}
	return &commandOutput{
		logLine:   logLine,
		logStdout: !set || mode == "stdout" || mode == "stdoutAndStderr",
		logStderr: !set || mode == "stderr" || mode == "stdoutAndStderr",
	}
}

type streamWriter struct {
	o      *commandOutput
	own    *bytes.Buffer
	logged bool
}

func (w streamWriter) Write(b []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	w.own.Write(b)
	w.o.combined.Write(b)
	if w.logged {
		// Both logged streams share one line buffer, as upstream's single logging pipe does.
		w.o.pending.Write(b)
		for {
			i := bytes.IndexByte(w.o.pending.Bytes(), '\n')
			if i < 0 {
				break
			}
			line := string(w.o.pending.Next(i + 1))
			w.o.logLine(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
		}
	}
	return len(b), nil
}

func (o *commandOutput) writers() (stdout, stderr io.Writer) {
	return streamWriter{o, &o.stdout, o.logStdout}, streamWriter{o, &o.stderr, o.logStderr}
}

// finish logs the last, unterminated line (bufio.Scanner does) and returns stdout and stderr
// with one trailing newline removed.
func (o *commandOutput) finish() (string, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending.Len() > 0 {
		o.logLine(strings.TrimSuffix(o.pending.String(), "\r"))
		o.pending.Reset()
	}
	return strings.TrimSuffix(o.stdout.String(), "\n"), strings.TrimSuffix(o.stderr.String(), "\n")
}

// commandFailed is upstream's error text for a command that ran and failed: the error, the
// command (quoted, even when secret: upstream does not redact it) and everything it wrote, stdout
// and stderr interleaved as they arrived, untrimmed.
func commandFailed(err error, cmd string, o *commandOutput) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Errorf("%w: running %q:\n%s", err, cmd, o.combined.String())
}

// previousOutputEnv is PULUMI_COMMAND_STDOUT/STDERR from the previous outputs in state, each only
// when non-empty, unless addPreviousOutputInEnv is false.
func previousOutputEnv(in provutil.Props, previous resource.PropertyMap) map[string]string {
	env := map[string]string{}
	if !in.Bool("addPreviousOutputInEnv", true) {
		return env
	}
	prev := provutil.Props{M: previous}
	if s := prev.String("stdout", ""); s != "" {
		env["PULUMI_COMMAND_STDOUT"] = s
	}
	if s := prev.String("stderr", ""); s != "" {
		env["PULUMI_COMMAND_STDERR"] = s
	}
	return env
}

// run executes cmd for a resource (or local.run when urn is empty) of type t with inputs in;
// previous holds the outputs of the last run (nil on create), for PULUMI_COMMAND_STDOUT/STDERR.
func (p *commandProvider) run(
	ctx context.Context, t string, urn resource.URN, in provutil.Props, cmd string, previous resource.PropertyMap,
) (string, string, error) {
	ctx, done := p.work.Start(ctx)
	defer done()
	env := in.StringMap("environment")
	if env == nil {
		env = map[string]string{}
	}
	for k, v := range previousOutputEnv(in, previous) {
		env[k] = v
	}
	log := p.resourceLog(urn)
	// Each line an ephemeral Info status, as go-provider's Logger.InfoStatus (util.LogOutput).
	out := newCommandOutput(in.M["logging"], func(line string) { log.status(ctx, diag.Info, line) })
	stdout, stderr := out.writers()
	var err error
	if t == tRemoteCommand {
		err = runRemote(ctx, log, in.Object("connection"), cmd, env, in.String("stdin", ""), stdout, stderr)
		var exit *ssh.ExitError
		var missing *ssh.ExitMissingError
		if err != nil && !errors.As(err, &exit) && !errors.As(err, &missing) {
			out.finish()
			return "", "", err // dialing or opening the session failed: upstream returns that error as is
		}
	} else {
		err = runLocal(ctx, in, cmd, env, stdout, stderr)
	}
	so, se := out.finish()
	if err != nil {
		return so, se, commandFailed(err, cmd, out)
	}
	return so, se, nil
}

func runLocal(ctx context.Context, in provutil.Props, cmd string, env map[string]string, stdout, stderr io.Writer) error {
	interp := in.Strings("interpreter")
	if len(interp) == 0 {
		interp = []string{"/bin/sh", "-c"}
	}
	args := append(append([]string{}, interp[1:]...), cmd)
	c := exec.CommandContext(ctx, interp[0], args...)
	c.Dir = in.String("dir", "")
	c.Env = os.Environ()
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	if stdin := in.String("stdin", ""); stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	c.Stdout = stdout
	c.Stderr = stderr
	return c.Run()
}
