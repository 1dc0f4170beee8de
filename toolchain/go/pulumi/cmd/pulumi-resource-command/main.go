// Command pulumi-resource-command is this project's stand-in for the Pulumi "command" provider.
//
// It is NOT the upstream provider (github.com/pulumi/pulumi-command): the Go module proxy this
// project can reach does not serve that module, so toolchain/bootstrap builds this one instead.
// It implements the resources and functions of the npm package @pulumi/command (local.Command,
// local.run, remote.Command, remote.CopyToRemote, remote.CopyFile) with the same type tokens,
// property names and lifecycle rules as upstream 1.x:
//   - create runs on create; update (or create again, when update is unset) runs on any input
//     change; delete runs on delete; a change of triggers replaces the resource;
//   - stdout/stderr are captured with one trailing newline removed;
//   - with addPreviousOutputInEnv (default true) the previous stdout/stderr are passed to update
//     and delete as PULUMI_COMMAND_STDOUT / PULUMI_COMMAND_STDERR;
//   - remote environment variables are sent with SSH "env" requests (the server must AcceptEnv them).
//
// Not implemented: assetPaths/archivePaths (local.Command and local.run fail if they are set).
// Where a real pulumi-resource-command of the pinned version is installed, that one is used.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"

	"sparks/toolchain/pulumi/internal/buildinfo"
	"sparks/toolchain/pulumi/internal/provutil"
)

const (
	tLocalCommand  = "command:local:Command"
	tLocalRun      = "command:local:run"
	tRemoteCommand = "command:remote:Command"
	tCopyToRemote  = "command:remote:CopyToRemote"
	tCopyFile      = "command:remote:CopyFile"
)

func main() {
	provutil.Serve("command", func(host *provider.HostClient) plugin.Provider {
		return &commandProvider{Base: provutil.Base{Version: buildinfo.Command}, host: host}
	})
}

type commandProvider struct {
	provutil.Base
	host *provider.HostClient
}

func (p *commandProvider) Check(_ context.Context, req plugin.CheckRequest) (plugin.CheckResponse, error) {
	in := provutil.Props{M: req.News}
	var fails []plugin.CheckFailure
	require := func(k string) {
		if !in.Has(k) {
			fails = append(fails, plugin.CheckFailure{Property: resource.PropertyKey(k), Reason: "missing required property '" + k + "'"})
		}
	}
	switch string(req.Type) {
	case tLocalCommand:
		for _, k := range []string{"assetPaths", "archivePaths"} {
			if in.Has(k) {
				fails = append(fails, plugin.CheckFailure{Property: resource.PropertyKey(k),
					Reason: k + " is not supported by this project's stand-in command provider"})
			}
		}
	case tRemoteCommand:
		require("connection")
	case tCopyToRemote:
		require("connection")
		require("source")
		require("remotePath")
	case tCopyFile:
		require("connection")
		require("localPath")
		require("remotePath")
	default:
		return plugin.CheckResponse{}, fmt.Errorf("unknown resource type %s", req.Type)
	}
	return plugin.CheckResponse{Properties: req.News, Failures: fails}, nil
}

// A change of triggers replaces the resource; any other input change is an update.
func (p *commandProvider) Diff(_ context.Context, req plugin.DiffRequest) (plugin.DiffResponse, error) {
	return provutil.Diff(req.OldInputs, req.NewInputs, func(k string) bool { return k == "triggers" }), nil
}

func randomID(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// outputsFor starts the outputs from the inputs (secret markers kept).
func outputsFor(inputs resource.PropertyMap) resource.PropertyMap {
	return provutil.Copy(inputs)
}

// setOutput stores a captured output, as a secret when any of the command's inputs is secret.
func setOutput(outs resource.PropertyMap, in provutil.Props, k, v string) {
	val := resource.NewStringProperty(v)
	// The connection is always a secret; that alone does not make the output secret.
	for _, s := range []string{"create", "update", "delete", "environment", "stdin"} {
		if in.IsSecret(s) {
			val = resource.MakeSecret(val)
			break
		}
	}
	outs[resource.PropertyKey(k)] = val
}

func (p *commandProvider) Create(ctx context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	in := provutil.Props{M: req.Properties}
	outs := outputsFor(req.Properties)
	t := string(req.Type)
	if req.Preview {
		if t == tLocalCommand || t == tRemoteCommand {
			outs["stdout"] = resource.MakeComputed(resource.NewStringProperty(""))
			outs["stderr"] = resource.MakeComputed(resource.NewStringProperty(""))
		}
		return plugin.CreateResponse{Properties: outs}, nil
	}
	var id string
	switch t {
	case tLocalCommand, tRemoteCommand:
		id = randomID(req.Name)
		stdout, stderr := "", ""
		if cmd := in.String("create", ""); cmd != "" {
			var err error
			stdout, stderr, err = p.run(ctx, t, req.URN, in, cmd, nil)
			if err != nil {
				return plugin.CreateResponse{}, err
			}
		}
		setOutput(outs, in, "stdout", stdout)
		setOutput(outs, in, "stderr", stderr)
	case tCopyToRemote, tCopyFile:
		if err := p.copy(ctx, req.URN, t, in); err != nil {
			return plugin.CreateResponse{}, err
		}
		id = randomID(req.Name)
	default:
		return plugin.CreateResponse{}, fmt.Errorf("unknown resource type %s", t)
	}
	return plugin.CreateResponse{ID: resource.ID(id), Properties: outs, Status: resource.StatusOK}, nil
}

func previousEnv(in provutil.Props, old provutil.Props) map[string]string {
	if !in.Bool("addPreviousOutputInEnv", true) {
		return nil
	}
	return map[string]string{
		"PULUMI_COMMAND_STDOUT": old.String("stdout", ""),
		"PULUMI_COMMAND_STDERR": old.String("stderr", ""),
	}
}

func (p *commandProvider) Update(ctx context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	in := provutil.Props{M: req.NewInputs}
	old := provutil.Props{M: req.OldOutputs}
	outs := outputsFor(req.NewInputs)
	t := string(req.Type)
	switch t {
	case tLocalCommand, tRemoteCommand:
		if req.Preview {
			outs["stdout"] = resource.MakeComputed(resource.NewStringProperty(""))
			outs["stderr"] = resource.MakeComputed(resource.NewStringProperty(""))
			return plugin.UpdateResponse{Properties: outs}, nil
		}
		cmd := in.String("update", "")
		if cmd == "" {
			cmd = in.String("create", "")
		}
		stdout, stderr := old.String("stdout", ""), old.String("stderr", "")
		if cmd != "" {
			var err error
			stdout, stderr, err = p.run(ctx, t, req.URN, in, cmd, previousEnv(in, old))
			if err != nil {
				return plugin.UpdateResponse{}, err
			}
		}
		setOutput(outs, in, "stdout", stdout)
		setOutput(outs, in, "stderr", stderr)
	case tCopyToRemote, tCopyFile:
		if !req.Preview {
			if err := p.copy(ctx, req.URN, t, in); err != nil {
				return plugin.UpdateResponse{}, err
			}
		}
	default:
		return plugin.UpdateResponse{}, fmt.Errorf("unknown resource type %s", t)
	}
	return plugin.UpdateResponse{Properties: outs, Status: resource.StatusOK}, nil
}

func (p *commandProvider) Delete(ctx context.Context, req plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	t := string(req.Type)
	if t != tLocalCommand && t != tRemoteCommand {
		return plugin.DeleteResponse{Status: resource.StatusOK}, nil // copies are left in place, as upstream
	}
	// The state holds the inputs as well as stdout/stderr.
	state := provutil.Props{M: req.Outputs}
	cmd := state.String("delete", "")
	if cmd == "" {
		return plugin.DeleteResponse{Status: resource.StatusOK}, nil
	}
	if _, _, err := p.run(ctx, t, req.URN, state, cmd, previousEnv(state, state)); err != nil {
		return plugin.DeleteResponse{}, err
	}
	return plugin.DeleteResponse{Status: resource.StatusOK}, nil
}

func (p *commandProvider) Read(_ context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	return plugin.ReadResponse{
		ReadResult: plugin.ReadResult{ID: req.ID, Inputs: req.Inputs, Outputs: req.State},
		Status:     resource.StatusOK,
	}, nil
}

func (p *commandProvider) Invoke(ctx context.Context, req plugin.InvokeRequest) (plugin.InvokeResponse, error) {
	if string(req.Tok) != tLocalRun {
		return plugin.InvokeResponse{}, fmt.Errorf("unknown function %s", req.Tok)
	}
	in := provutil.Props{M: req.Args}
	if !in.Has("command") {
		return plugin.InvokeResponse{Failures: []plugin.CheckFailure{{Property: "command", Reason: "missing required property 'command'"}}}, nil
	}
	for _, k := range []string{"assetPaths", "archivePaths"} {
		if in.Has(k) {
			return plugin.InvokeResponse{}, fmt.Errorf("%s is not supported by this project's stand-in command provider", k)
		}
	}
	stdout, stderr, err := p.run(ctx, tLocalCommand, "", in, in.String("command", ""), nil)
	if err != nil {
		return plugin.InvokeResponse{}, err
	}
	outs := outputsFor(req.Args)
	setOutput(outs, in, "stdout", stdout)
	setOutput(outs, in, "stderr", stderr)
	return plugin.InvokeResponse{Properties: outs}, nil
}

// run executes cmd locally or over SSH, depending on the resource type.
func (p *commandProvider) run(
	ctx context.Context, t string, urn resource.URN, in provutil.Props, cmd string, extraEnv map[string]string,
) (string, string, error) {
	env := in.StringMap("environment")
	if env == nil {
		env = map[string]string{}
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	logMode := in.String("logging", "stdoutAndStderr")
	var stdout, stderr bytes.Buffer
	outW := io.Writer(&stdout)
	errW := io.Writer(&stderr)
	var logs []*lineLogger
	if urn != "" && p.host != nil {
		if logMode == "stdout" || logMode == "stdoutAndStderr" {
			l := &lineLogger{ctx: ctx, host: p.host, urn: urn}
			logs = append(logs, l)
			outW = io.MultiWriter(&stdout, l)
		}
		if logMode == "stderr" || logMode == "stdoutAndStderr" {
			l := &lineLogger{ctx: ctx, host: p.host, urn: urn}
			logs = append(logs, l)
			errW = io.MultiWriter(&stderr, l)
		}
	}
	var err error
	if t == tRemoteCommand {
		err = runRemote(ctx, in.Object("connection"), cmd, env, in.String("stdin", ""), outW, errW)
	} else {
		err = runLocal(ctx, in, cmd, env, outW, errW)
	}
	for _, l := range logs {
		l.flush()
	}
	so := strings.TrimSuffix(stdout.String(), "\n")
	se := strings.TrimSuffix(stderr.String(), "\n")
	if err != nil {
		msg := fmt.Sprintf("%v: running %q", err, cmd)
		if out := strings.TrimSpace(so + "\n" + se); out != "" {
			msg += ":\n" + out
		}
		return so, se, errors.New(msg)
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
	if in.Has("stdin") {
		c.Stdin = strings.NewReader(in.String("stdin", ""))
	}
	c.Stdout = stdout
	c.Stderr = stderr
	return c.Run()
}

// lineLogger sends each complete line of output to the engine as a status message.
type lineLogger struct {
	ctx  context.Context
	host *provider.HostClient
	urn  resource.URN
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(b)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.Reset()
			l.buf.WriteString(line)
			return len(b), nil
		}
		_ = l.host.LogStatus(l.ctx, diag.Info, l.urn, strings.TrimSuffix(line, "\n"))
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := bufio.NewScanner(&l.buf)
	for sc.Scan() {
		_ = l.host.LogStatus(l.ctx, diag.Info, l.urn, sc.Text())
	}
	l.buf.Reset()
}
