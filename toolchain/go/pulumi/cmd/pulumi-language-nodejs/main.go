// Command pulumi-language-nodejs is a small Node.js language host written for this
// project. It is NOT the upstream Pulumi language host: the Go module proxy this
// project can reach does not serve github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs
// at any version, so toolchain/bootstrap builds this one instead (see toolchain/README.md).
//
// It speaks the LanguageRuntime gRPC protocol of the pinned Pulumi SDK and implements what
// `pulumi preview/up/destroy/refresh/install/about` need for a Node.js (TypeScript) program:
// it runs `node <@pulumi/pulumi>/cmd/run ...` (the entry point shipped in the npm package)
// and reports the resource plugins declared by the installed npm packages.
// Code generation, policy packs and plugins written in Node.js are not supported.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	"sparks/toolchain/pulumi/internal/buildinfo"
)

// exitCodeUserActionable is the exit code @pulumi/pulumi's run entry point uses when it has
// already shown the user an actionable error message.
const exitCodeUserActionable = 32

func main() {
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	// Flags the engine may pass to every plugin.
	_ = fs.Bool("logtostderr", false, "log to stderr (accepted, ignored)")
	_ = fs.Int("v", 0, "log verbosity (accepted, ignored)")
	tracing := fs.String("tracing", "", "Zipkin-compatible tracing endpoint, passed on to the program")
	// Flags of the upstream host, accepted for compatibility.
	_ = fs.String("root", "", "project root (accepted, ignored)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	engineAddress := ""
	if fs.NArg() > 0 {
		engineAddress = fs.Arg(fs.NArg() - 1)
	}

	host := &languageHost{engineAddress: engineAddress, tracing: *tracing}
	cancel := make(chan bool)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: could not start the gRPC server: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from the first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: %v\n", err)
		os.Exit(1)
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	tracing       string
}

func (h *languageHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: buildinfo.LanguageHost}, nil
}

func (h *languageHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (h *languageHost) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// programDir returns the directory of the program (where package.json lives).
func programDir(info *pulumirpc.ProgramInfo, pwd string) string {
	if info != nil && info.GetProgramDirectory() != "" {
		return info.GetProgramDirectory()
	}
	if pwd != "" {
		return pwd
	}
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return wd
}

// runtimeOptions are the `runtime.options` of Pulumi.yaml that this host understands.
type runtimeOptions struct {
	typescript bool
	tsconfig   string
	nodeargs   string
}

func parseOptions(info *pulumirpc.ProgramInfo) runtimeOptions {
	opts := runtimeOptions{typescript: true}
	if info == nil || info.GetOptions() == nil {
		return opts
	}
	m := info.GetOptions().AsMap()
	if v, ok := m["typescript"].(bool); ok {
		opts.typescript = v
	}
	if v, ok := m["tsconfig"].(string); ok {
		opts.tsconfig = v
	}
	if v, ok := m["nodeargs"].(string); ok {
		opts.nodeargs = v
	}
	return opts
}

// ---------------------------------------------------------------------------------------------
// Plugins and packages

type packageJSON struct {
	Name            string            `json:"name"`
	Version         string            `json:"version"`
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
	Pulumi          *struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	} `json:"pulumi"`
}

func readPackageJSON(path string) (*packageJSON, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p packageJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// findNodeModules returns the node_modules directories visible from dir (dir's own and its parents').
func findNodeModules(dir string) []string {
	var out []string
	d, err := filepath.Abs(dir)
	if err != nil {
		d = dir
	}
	for {
		nm := filepath.Join(d, "node_modules")
		if st, err := os.Stat(nm); err == nil && st.IsDir() {
			out = append(out, nm)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return out
		}
		d = parent
	}
}

// resourcePackages walks node_modules (recursively, following nested node_modules) and returns
// the resource plugins that installed packages declare in the "pulumi" field of their package.json.
func resourcePackages(dir string) ([]*pulumirpc.PackageDependency, error) {
	seen := map[string]bool{}
	var deps []*pulumirpc.PackageDependency
	var walk func(nm string, depth int) error
	visit := func(pkgDir string, depth int) error {
		p, err := readPackageJSON(filepath.Join(pkgDir, "package.json"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if p.Pulumi != nil && p.Pulumi.Resource {
			name := p.Pulumi.Name
			if name == "" {
				name = strings.TrimPrefix(p.Name, "@pulumi/")
			}
			ver := p.Pulumi.Version
			if ver == "" {
				ver = p.Version
			}
			ver = strings.TrimPrefix(ver, "v")
			key := name + "@" + ver
			if !seen[key] {
				seen[key] = true
				deps = append(deps, &pulumirpc.PackageDependency{
					Name: name, Kind: "resource", Version: "v" + ver, Server: p.Pulumi.Server,
				})
			}
		}
		return walk(filepath.Join(pkgDir, "node_modules"), depth+1)
	}
	walk = func(nm string, depth int) error {
		if depth > 16 {
			return nil
		}
		entries, err := os.ReadDir(nm)
		if err != nil {
			return nil // no node_modules here
		}
		for _, e := range entries {
			if !e.IsDir() && e.Type()&os.ModeSymlink == 0 {
				continue
			}
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			if strings.HasPrefix(name, "@") {
				scoped, err := os.ReadDir(filepath.Join(nm, name))
				if err != nil {
					continue
				}
				for _, s := range scoped {
					if err := visit(filepath.Join(nm, name, s.Name()), depth); err != nil {
						return err
					}
				}
				continue
			}
			if err := visit(filepath.Join(nm, name), depth); err != nil {
				return err
			}
		}
		return nil
	}
	for _, nm := range findNodeModules(dir) {
		if err := walk(nm, 0); err != nil {
			return nil, err
		}
	}
	sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
	return deps, nil
}

func (h *languageHost) GetRequiredPackages(
	_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := resourcePackages(programDir(req.GetInfo(), ""))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *languageHost) GetRequiredPlugins(
	_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := resourcePackages(programDir(req.GetInfo(), req.GetPwd()))
	if err != nil {
		return nil, err
	}
	plugins := make([]*pulumirpc.PluginDependency, 0, len(deps))
	for _, d := range deps {
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server,
		})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

func (h *languageHost) GetProgramDependencies(
	_ context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir := programDir(req.GetInfo(), req.GetPwd())
	p, err := readPackageJSON(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for n := range p.Dependencies {
		names[n] = true
	}
	for n := range p.DevDependencies {
		names[n] = true
	}
	var out []*pulumirpc.DependencyInfo
	nms := findNodeModules(dir)
	for n := range names {
		for _, nm := range nms {
			dp, err := readPackageJSON(filepath.Join(nm, n, "package.json"))
			if err == nil {
				out = append(out, &pulumirpc.DependencyInfo{Name: n, Version: dp.Version})
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: out}, nil
}

func (h *languageHost) About(context.Context, *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("could not find node on the $PATH: %w", err)
	}
	out, err := exec.Command(nodeBin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", nodeBin, err)
	}
	return &pulumirpc.AboutResponse{
		Executable: nodeBin,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
		Metadata:   map[string]string{"languageHost": "sparks pulumi-language-nodejs " + buildinfo.LanguageHost},
	}, nil
}

// streamWriter forwards output of `npm install` to the engine.
type streamWriter struct {
	mu     *sync.Mutex
	stream pulumirpc.LanguageRuntime_InstallDependenciesServer
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := append([]byte(nil), p...)
	resp := &pulumirpc.InstallDependenciesResponse{Stdout: buf}
	if w.stderr {
		resp = &pulumirpc.InstallDependenciesResponse{Stderr: buf}
	}
	if err := w.stream.Send(resp); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, stream pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	dir := programDir(req.GetInfo(), req.GetDirectory())
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
		return nil // nothing to install
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("could not find npm on the $PATH: %w", err)
	}
	var mu sync.Mutex
	cmd := exec.Command(npm, "install")
	cmd.Dir = dir
	cmd.Stdout = streamWriter{mu: &mu, stream: stream}
	cmd.Stderr = streamWriter{mu: &mu, stream: stream, stderr: true}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm install in %s failed: %w", dir, err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Running the program

// locateRunScript finds @pulumi/pulumi's run entry point the way Node would resolve it from dir.
func locateRunScript(nodeBin, dir string) (string, error) {
	if p := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH"); p != "" {
		return p, nil
	}
	cmd := exec.Command(nodeBin, "-e",
		"process.stdout.write(require('path').dirname(require.resolve('@pulumi/pulumi/cmd/run/index.js')))")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("it looks like the Pulumi SDK has not been installed in %s "+
			"(have you run npm install?): %v: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func configEnv(req *pulumirpc.RunRequest) ([]string, error) {
	cfg := req.GetConfig()
	if cfg == nil {
		cfg = map[string]string{}
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	keysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	return []string{"PULUMI_CONFIG=" + string(cfgJSON), "PULUMI_CONFIG_SECRET_KEYS=" + string(keysJSON)}, nil
}

func splitArgs(s string) []string {
	// nodeargs is a plain whitespace-separated list; quoting is not supported.
	return strings.Fields(s)
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return nil, status.Error(codes.Unimplemented, "attaching a debugger is not supported by this language host")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("could not find node on the $PATH: %v", err)}, nil
	}
	info := req.GetInfo()
	dir := programDir(info, req.GetPwd())
	pwd := req.GetPwd()
	if pwd == "" {
		pwd = dir
	}
	runPath, err := locateRunScript(nodeBin, dir)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	opts := parseOptions(info)

	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()

	args := splitArgs(opts.nodeargs)
	args = append(args, runPath)
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", engine)
	add("organization", req.GetOrganization())
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", pwd)
	if info != nil {
		add("root-directory", info.GetRootDirectory())
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	if req.GetParallel() > 0 {
		add("parallel", strconv.Itoa(int(req.GetParallel())))
	}
	add("tracing", h.tracing)
	program := req.GetProgram()
	if info != nil && info.GetEntryPoint() != "" {
		program = info.GetEntryPoint()
	}
	if program == "" {
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	env := os.Environ()
	cfgEnv, err := configEnv(req)
	if err != nil {
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("failed to serialize configuration: %v", err)}, nil
	}
	env = append(env, cfgEnv...)
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}

	cmd := exec.Command(nodeBin, args...)
	cmd.Dir = pwd
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	// If this host dies, take the program down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	if err := cmd.Run(); err != nil {
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitCodeUserActionable {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}
