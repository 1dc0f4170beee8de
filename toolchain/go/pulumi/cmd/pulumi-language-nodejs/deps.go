package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/executable"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/nodejs/npm"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// The package managers themselves (which one `auto` picks, their command lines, workspace
// detection, lock file parsing) come from the Pulumi SDK's nodejs/npm package, which the upstream
// host uses too; this file only wires the RPCs to it the way upstream does.

// InstallDependencies runs `pulumi install`: the package manager of the `packagemanager` option
// (npm, yarn, pnpm or bun; `auto` or unset: chosen from lock files) installs in the program
// directory, or in the root of the npm/yarn/pnpm workspace that contains it. Output is streamed
// to the engine (through a terminal when the engine has one).
func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()

	// Not supported: UseLanguageVersionTools (upstream: `fnm use` of .nvmrc/.node-version, a
	// no-op when fnm is not installed).
	fmt.Fprint(stdout, "Installing dependencies...\n\n")
	dir := programDir(req.GetInfo(), req.GetDirectory())
	root := dir
	workspaceRoot, err := npm.FindWorkspaceRoot(dir)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "Detected workspace root at %s\n", workspaceRoot)
		root = workspaceRoot
	case !errors.Is(err, npm.ErrNotInWorkspace):
		return fmt.Errorf("failure while trying to find workspace root: %w", err)
	}
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return fmt.Errorf("failed to parse options: %w", err)
	}
	if _, err := npm.Install(server.Context(), opts.packagemanager, root, opts.production, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprint(stdout, "Finished installing dependencies\n\n")
	return closer.Close()
}

// GetProgramDependencies lists the installed packages from the package manager's lock file.
func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return nil, fmt.Errorf("failed to parse options: %w", err)
	}
	dir := programDir(req.GetInfo(), req.GetPwd())
	pm, err := npm.ResolvePackageManager(opts.packagemanager, dir)
	if err != nil {
		return nil, fmt.Errorf("failed to determine package manager: %w", err)
	}
	packages, err := pm.ListPackages(ctx, dir, req.GetTransitiveDependencies())
	if err != nil {
		return nil, fmt.Errorf("failed to get node dependencies: %w", err)
	}
	deps := make([]*pulumirpc.DependencyInfo, len(packages))
	for i, p := range packages {
		deps[i] = &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version}
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

// About reports node, the package manager and the TypeScript the program would load (for
// `pulumi about`); versions that cannot be found are left empty, as upstream.
func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return nil, fmt.Errorf("failed to parse options: %w", err)
	}
	dir := programDir(req.GetInfo(), "")
	pm, err := npm.ResolvePackageManager(opts.packagemanager, dir)
	if err != nil {
		return nil, fmt.Errorf("could not resolve packagemanager: %w", err)
	}
	nodePath, err := executable.FindExecutable("node")
	if err != nil {
		return nil, fmt.Errorf("could not find executable %q: %w", "node", err)
	}

	var nodeVersion, pmVersion, tsVersion string
	var wg sync.WaitGroup
	wg.Go(func() { nodeVersion = commandOutput(ctx, "", "node", "--version") })
	wg.Go(func() {
		if v, err := pm.Version(); err == nil {
			pmVersion = v.String()
		}
	})
	// The TypeScript that node resolves from the program, not a `tsc` on PATH.
	wg.Go(func() {
		tsVersion = commandOutput(ctx, dir, "node", "-e", "console.log(require('typescript/package.json').version)")
	})
	wg.Wait()

	metadata := map[string]string{"packagemanager": pm.Name(), "packagemanagerVersion": pmVersion}
	if tsVersion != "" {
		metadata["typescriptVersion"] = tsVersion
	}
	return &pulumirpc.AboutResponse{Executable: nodePath, Version: nodeVersion, Metadata: metadata}, nil
}

// commandOutput returns the trimmed stdout of a command, or "" if it fails.
func commandOutput(ctx context.Context, dir, name string, args ...string) string {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stderr = io.Discard
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// RuntimeOptionsPrompts asks for the package manager (`pulumi new`) unless it is already set;
// installed package managers are offered first.
func (h *languageHost) RuntimeOptionsPrompts(
	_ context.Context, req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	var prompts []*pulumirpc.RuntimeOptionPrompt
	if _, set := req.GetInfo().GetOptions().AsMap()["packagemanager"]; !set {
		prompts = append(prompts, &pulumirpc.RuntimeOptionPrompt{
			Key:         "packagemanager",
			Description: "The package manager to use for installing dependencies",
			PromptType:  pulumirpc.RuntimeOptionPrompt_STRING,
			Choices:     plugin.MakeExecutablePromptChoices("npm", "pnpm", "yarn", "bun"),
			Default: &pulumirpc.RuntimeOptionPrompt_RuntimeOptionValue{
				PromptType:  pulumirpc.RuntimeOptionPrompt_STRING,
				StringValue: "npm",
			},
		})
	}
	return &pulumirpc.RuntimeOptionsResponse{Prompts: prompts}, nil
}
