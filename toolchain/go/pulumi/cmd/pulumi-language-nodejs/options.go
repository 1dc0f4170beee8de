package main

import (
	"errors"
	"fmt"

	"github.com/google/shlex"
	"github.com/pulumi/pulumi/sdk/v3/nodejs/npm"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// runtimeOptions are the `runtime.options` of Pulumi.yaml (upstream: nodeOptions / parseOptions).
type runtimeOptions struct {
	typescript     bool   // run TypeScript through ts-node (default true)
	tsconfig       string // PULUMI_NODEJS_TSCONFIG_PATH
	nodeargs       string // extra node arguments, split like a shell would (shlex)
	packagemanager npm.PackageManagerType
	production     bool // install without devDependencies
}

// packageManagers maps the accepted `packagemanager` values to the SDK's types.
var packageManagers = map[string]npm.PackageManagerType{
	"auto": npm.AutoPackageManager,
	"npm":  npm.NpmPackageManager,
	"yarn": npm.YarnPackageManager,
	"pnpm": npm.PnpmPackageManager,
	"bun":  npm.BunPackageManager,
}

// parseOptions reads the runtime options, rejecting values of the wrong type with upstream's
// messages.
func parseOptions(info *pulumirpc.ProgramInfo) (runtimeOptions, error) {
	opts := runtimeOptions{typescript: true, packagemanager: npm.AutoPackageManager}
	var raw map[string]any
	if info != nil && info.GetOptions() != nil {
		raw = info.GetOptions().AsMap()
	}
	var err error
	setOption := func(key string, dst any, typeError string) {
		v, ok := raw[key]
		if !ok || err != nil {
			return
		}
		switch dst := dst.(type) {
		case *bool:
			b, isBool := v.(bool)
			if !isBool {
				err = errors.New(typeError)
				return
			}
			*dst = b
		case *string:
			s, isString := v.(string)
			if !isString {
				err = errors.New(typeError)
				return
			}
			*dst = s
		}
	}
	setOption("typescript", &opts.typescript, "typescript option must be a boolean")
	setOption("tsconfig", &opts.tsconfig, "tsconfigpath option must be a string")
	setOption("nodeargs", &opts.nodeargs, "nodeargs option must be a string")
	setOption("production", &opts.production, "production option must be a boolean")
	var pm string
	setOption("packagemanager", &pm, "packagemanager option must be a string")
	if err != nil {
		return opts, err
	}
	if _, set := raw["packagemanager"]; set {
		t, known := packageManagers[pm]
		if !known {
			return opts, fmt.Errorf("packagemanager option must be one of auto, npm, yarn, pnpm or bun, got %q", pm)
		}
		opts.packagemanager = t
	}
	return opts, nil
}

// nodeArgs splits the `nodeargs` option as a POSIX shell would (quotes and escapes honoured),
// as upstream does with shlex.Split.
func (o runtimeOptions) nodeArgs() ([]string, error) {
	return shlex.Split(o.nodeargs)
}
