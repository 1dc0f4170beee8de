package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/blang/semver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// packageJSON is the part of a package.json this host reads.
type packageJSON struct {
	Name            string                  `json:"name"`
	Version         string                  `json:"version"`
	Pulumi          plugin.PulumiPluginJSON `json:"pulumi"`
	Dependencies    map[string]string       `json:"dependencies"`
	DevDependencies map[string]string       `json:"devDependencies"`
}

// GetRequiredPackages reports the resource plugins that installed npm packages declare
// ("pulumi": {"resource": true, ...} in their package.json). As upstream, it searches the whole
// program directory tree (node_modules only, not parent directories), skips nested policy packs,
// never fails (problems are logged and the packages found so far returned) and warns on stderr
// when incompatible copies of @pulumi/pulumi are installed.
func (h *languageHost) GetRequiredPackages(
	_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	scan := packageScan{visited: map[string]bool{}, sdkVersions: map[string]semver.Version{}}
	dir := programDir(req.GetInfo(), "")
	err := scan.dir(dir, false)
	if err == nil {
		warnIncompatibleSDKs(scan.sdkVersions)
	} else {
		logging.V(3).Infof("one or more errors while discovering plugins: %s", err)
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: scan.packages}, nil
}

// GetRequiredPlugins is not implemented upstream either; the engine uses GetRequiredPackages.
func (h *languageHost) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return nil, status.Errorf(codes.Unimplemented, "method GetRequiredPlugins not implemented")
}

// packageScan walks a directory tree collecting plugin declarations.
type packageScan struct {
	visited     map[string]bool           // absolute directories already walked (symlink loops)
	sdkVersions map[string]semver.Version // package.json path of each @pulumi/pulumi -> version
	packages    []*pulumirpc.PackageDependency
}

// dir walks one directory; underNodeModules says whether a node_modules directory is among
// its ancestors, i.e. whether package.json files here belong to installed packages.
func (s *packageScan) dir(dir string, underNodeModules bool) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("getting full path for plugin dir %s: %w", dir, err)
	}
	if s.visited[dir] {
		return nil
	}
	s.visited[dir] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading plugin dir %s: %w", dir, err)
	}
	childrenUnderNodeModules := underNodeModules || filepath.Base(dir) == "node_modules"
	var errs []error
	for _, entry := range entries {
		path := filepath.Join(dir, entry.Name())
		isDir := entry.IsDir()
		if entry.Type()&os.ModeSymlink != 0 {
			// Follow the link, and remember the target so that loops end.
			target, err := filepath.EvalSymlinks(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("resolving link in plugin dir %s: %w", path, err))
				continue
			}
			info, err := os.Stat(target)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			path, isDir = target, info.IsDir()
		}
		switch {
		case isDir:
			// A policy pack's plugins are not the program's.
			policyPack, err := workspace.DetectPolicyPackPathAt(path)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if policyPack != "" {
				continue
			}
			if err := s.dir(path, childrenUnderNodeModules); err != nil {
				errs = append(errs, err)
			}
		case underNodeModules && entry.Name() == "package.json":
			if err := s.packageFile(path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// packageFile records the plugin a package.json declares, if any.
func (s *packageScan) packageFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading package.json %s: %w", path, err)
	}
	var pkg packageJSON
	if err := json.Unmarshal(b, &pkg); err != nil {
		return fmt.Errorf("unmarshaling package.json %s: %w", path, err)
	}
	if pkg.Name == "@pulumi/pulumi" {
		v, err := semver.Parse(pkg.Version)
		if err != nil {
			return fmt.Errorf("Could not understand version %s in '%s': %w", pkg.Version, path, err)
		}
		s.sdkVersions[path] = v
	}
	if !pkg.Pulumi.Resource {
		return nil
	}
	dep, err := pluginDependency(pkg)
	if err != nil {
		return fmt.Errorf("unmarshaling package.json %s: %w", path, err)
	}
	s.packages = append(s.packages, dep)
	return nil
}

// pluginDependency derives the plugin of a package that declares "pulumi": {"resource": true}:
// the name is pulumi.name, else the package name without its @pulumi/ scope (other scopes must
// set pulumi.name); the version is pulumi.version, else the package version, with a "v" prefix.
func pluginDependency(pkg packageJSON) (*pulumirpc.PackageDependency, error) {
	name := pkg.Pulumi.Name
	if name == "" {
		switch {
		case pkg.Name == "":
			return nil, errors.New("missing expected \"name\" property")
		case strings.HasPrefix(pkg.Name, "@pulumi/"):
			name = strings.TrimPrefix(pkg.Name, "@pulumi/")
		default:
			return nil, fmt.Errorf("Missing property \"name\" for the third-party plugin '%v' "+
				"inside package.json under the \"pulumi\" section.", pkg.Name)
		}
	}
	version := pkg.Pulumi.Version
	if version == "" {
		version = pkg.Version
	}
	if version == "" {
		return nil, errors.New("Missing expected \"version\" property")
	}
	if !strings.HasPrefix(version, "v") {
		version = "v" + version
	}
	return &pulumirpc.PackageDependency{
		Name:             name,
		Kind:             "resource",
		Version:          version,
		Server:           pkg.Pulumi.Server,
		Parameterization: parameterization(pkg.Pulumi.Parameterization),
		Extension:        parameterization(pkg.Pulumi.ExtensionParameterization),
	}, nil
}

func parameterization(p *plugin.PulumiParameterizationJSON) *pulumirpc.PackageParameterization {
	if p == nil {
		return nil
	}
	return &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
}

// warnIncompatibleSDKs prints upstream's warning when two installed copies of @pulumi/pulumi
// cannot share one process (different major versions; for 0.x, different minor versions).
func warnIncompatibleSDKs(versions map[string]semver.Version) {
	paths := make([]string, 0, len(versions))
	for p := range versions {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if len(paths) < 2 {
		return
	}
	first := paths[0]
	for _, p := range paths[1:] {
		if problem := sdkIncompatibility(versions[p], versions[first]); problem != "" {
			fmt.Fprintf(os.Stderr, "Found incompatible versions of @pulumi/pulumi. %s\n"+
				"  Version %s referenced at %s\n  Version %s referenced at %s\n",
				problem, versions[first], first, versions[p], p)
			return
		}
	}
}

// sdkIncompatibility returns why two @pulumi/pulumi versions are incompatible, or "".
func sdkIncompatibility(a, b semver.Version) string {
	const majorOrMinor = "Differing major or minor versions are not supported."
	oneAnd017 := func(x, y semver.Version) bool { return x.Major == 1 && y.Major == 0 && y.Minor == 17 }
	switch {
	case a.Major == 0 && b.Major == 0:
		if a.Minor != b.Minor {
			return majorOrMinor
		}
	case a.Major >= 1 && a.Major <= 2 && b.Major >= 1 && b.Major <= 2:
	case a.Major > 2 || b.Major > 2:
		if a.Major != b.Major {
			return "Differing major versions are not supported."
		}
	case oneAnd017(a, b) || oneAnd017(b, a):
	default:
		return majorOrMinor
	}
	return ""
}
