package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

const (
	// defaultRunModule is @pulumi/pulumi's entry point for programs; PULUMI_LANGUAGE_NODEJS_RUN_PATH
	// overrides it (upstream uses that in tests).
	defaultRunModule = "@pulumi/pulumi/cmd/run"

	// exitCodeUserActionable is the exit code the run entry point uses when it has already shown
	// the user an actionable error: the engine then bails without adding a message.
	exitCodeUserActionable = 32

	// programStopDelay is how long an interrupted program gets before it is killed (upstream:
	// cmd.WaitDelay).
	programStopDelay = 5 * time.Second
)

// programDir returns the program's directory (where package.json lives).
func programDir(info *pulumirpc.ProgramInfo, pwd string) string {
	if info.GetProgramDirectory() != "" {
		return info.GetProgramDirectory()
	}
	if pwd != "" {
		return pwd
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "."
}

// Run runs the program with node, as upstream: `node <nodeargs> <run module> --monitor ...
// <entry point> <args>`, with the configuration in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS.
// The program is interrupted when the engine sends Cancel or the request ends.
func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	engine := h.engine()
	if engine == "" {
		return nil, errors.New("when debugging or running explicitly, must call Handshake before Run")
	}
	if req.GetAttachDebugger() {
		return nil, status.Error(codes.Unimplemented, "attaching a debugger is not supported by this language host")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not find node on the $PATH: %s", err)}, nil
	}
	runModule := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH")
	if runModule == "" {
		runModule = defaultRunModule
	}
	dir := programDir(req.GetInfo(), req.GetPwd())
	runPath, err := resolveModule(nodeBin, runModule, dir)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	args := h.programArgs(req, engine, runPath)
	cfg, err := configJSON(req.GetConfig())
	if err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("failed to serialize configuration: %s", err)}, nil
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("failed to serialize configuration secret keys: %s", err),
		}, nil
	}
	env := append(os.Environ(), "PULUMI_CONFIG="+cfg, "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON))
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}
	nodeArgs, err := opts.nodeArgs()
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	return h.runNode(ctx, nodeBin, append(nodeArgs, args...), env), nil
}

// programArgs builds the arguments of @pulumi/pulumi's run entry point, in upstream's order.
func (h *languageHost) programArgs(req *pulumirpc.RunRequest, engine, runPath string) []string {
	args := []string{runPath}
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flag("monitor", req.GetMonitorAddress())
	flag("engine", engine)
	flag("organization", req.GetOrganization())
	flag("project", req.GetProject())
	flag("root-directory", req.GetInfo().GetRootDirectory())
	flag("stack", req.GetStack())
	flag("pwd", programDir(req.GetInfo(), req.GetPwd()))
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	flag("parallel", strconv.Itoa(int(req.GetParallel())))
	flag("tracing", h.tracing)
	// The engine always sends an entry point ("." for the program directory).
	entryPoint := req.GetInfo().GetEntryPoint()
	if entryPoint == "" {
		entryPoint = req.GetProgram()
	}
	args = append(args, entryPoint)
	return append(args, req.GetArgs()...)
}

// configJSON serialises the configuration with keys in the "<namespace>:config:<name>" form, as
// upstream still does for the benefit of old @pulumi/pulumi versions.
func configJSON(cfg map[string]string) (string, error) {
	if cfg == nil {
		return "{}", nil
	}
	legacy := make(map[string]string, len(cfg))
	for k, v := range cfg {
		key, err := config.ParseKey(k)
		if err != nil {
			return "", err
		}
		legacy[key.Namespace()+":config:"+key.Name()] = v
	}
	b, err := json.Marshal(legacy)
	return string(b), err
}

// resolveModule finds module the way Node resolves it from dir; when it is missing, the error
// (node's stderr) tells the user to run `pulumi install`, as upstream's locateModule.
func resolveModule(nodeBin, module, dir string) (string, error) {
	moduleJSON, err := json.Marshal(module)
	if err != nil {
		return "", err
	}
	// One line: some node shims (Volta on Windows) mangle multi-line arguments.
	script := "try { console.log(require.resolve(" + string(moduleJSON) + ")); } catch (e) { " +
		"console.error(e.code === 'MODULE_NOT_FOUND' ? " +
		"'It looks like the Pulumi SDK has not been installed. Have you run pulumi install?' : e.message); " +
		"process.exit(1); }"
	cmd := exec.Command(nodeBin, "-e", script)
	cmd.Dir = dir
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return "", errors.New(string(exitErr.Stderr))
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// runNode runs the program and turns its exit into a RunResponse, as upstream's execRuntime.
func (h *languageHost) runNode(ctx context.Context, nodeBin string, args, env []string) *pulumirpc.RunResponse {
	// Interrupt the program when the engine sends Cancel or hangs up on this request.
	cmdCtx, cmdCancel := context.WithCancel(h.cancelCtx)
	defer cmdCancel()
	stopWatchingRequest := context.AfterFunc(ctx, cmdCancel)
	defer stopWatchingRequest()

	cmd := exec.CommandContext(cmdCtx, nodeBin, args...)
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = programStopDelay
	cmd.Env = env
	// Not *os.File: node may switch its stdout/stderr to non-blocking mode, which must not leak
	// into this process's own descriptors; os/exec copies through pipes instead.
	cmd.Stdout = struct{ io.Writer }{os.Stdout}
	oom := &oomSniffer{}
	cmd.Stderr = io.MultiWriter(struct{ io.Writer }{os.Stderr}, oom)
	killWithParent(cmd)

	h.programStarted()
	err := cmd.Run()
	h.programExited()
	if err == nil {
		return &pulumirpc.RunResponse{}
	}
	// Output written with process.stdout.write may still be in flight when node exits.
	_ = os.Stdout.Sync()
	_ = os.Stderr.Sync()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %s", err),
		}
	}
	switch code := exitErr.ExitCode(); code {
	case 0:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited unexpectedly: %s", exitErr)}
	case exitCodeUserActionable:
		return &pulumirpc.RunResponse{Bail: true}
	default:
		msg := fmt.Sprintf("Program exited with non-zero exit code: %d", code)
		if oom.detected() {
			msg += ". " + oomMessage
		}
		return &pulumirpc.RunResponse{Error: msg}
	}
}

const oomMessage = "Detected a possible out of memory error. Consider increasing the memory available " +
	"to the nodejs process by setting the `nodeargs` runtime option in Pulumi.yaml to " +
	"`nodeargs: --max-old-space-size=<size>` where `<size>` is the maximum memory in megabytes that " +
	"can be allocated to nodejs. See https://www.pulumi.com/docs/concepts/projects/project-file/#runtime-options"

// oomMarkers are lines V8 prints when the heap is exhausted (the second one when the debugger
// API hides the usual report, pulumi/pulumi#16596).
var oomMarkers = [][]byte{
	[]byte("<--- Last few GCs --->"),
	[]byte("Check failed: needs_context && current_scope_ == closure_scope_"),
}

// oomSniffer watches the program's stderr for an out-of-memory report.
type oomSniffer struct {
	mu    sync.Mutex
	found bool
	tail  []byte // end of the previous write, so that a marker split across writes is seen
}

func (o *oomSniffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.found {
		return len(p), nil
	}
	buf := append(o.tail, p...)
	for _, m := range oomMarkers {
		if bytes.Contains(buf, m) {
			o.found = true
			return len(p), nil
		}
	}
	const keep = 128 // longer than any marker
	if len(buf) > keep {
		buf = buf[len(buf)-keep:]
	}
	o.tail = append([]byte(nil), buf...)
	return len(p), nil
}

func (o *oomSniffer) detected() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.found
}
