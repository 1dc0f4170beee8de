// Command pulumi-resource-command is this project's stand-in for the Pulumi "command" provider.
//
// It is NOT the upstream provider (github.com/pulumi/pulumi-command): the Go module proxy this
// project can reach does not serve that module, so toolchain/bootstrap builds this one instead.
// It implements the resources and functions of the npm package @pulumi/command 1.2.1 (local.Command,
// local.run, remote.Command, remote.CopyToRemote, remote.CopyFile) with the same type tokens,
// property names and lifecycle as upstream v1.2.1, which is built on pulumi-go-provider's infer
// framework: schema.go (Check), diff.go (Diff), run.go (running commands), this file (the
// resource lifecycle and the outputs recorded in state).
//
// Not implemented: assetPaths/archivePaths (local.Command and local.run fail if they are set).
// Where a real pulumi-resource-command of the pinned version is installed, that one is used.
package main

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

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
	provutil.Serve("command", func(host *provider.HostClient, work *provutil.Work) (pulumirpc.ResourceProviderServer, error) {
		p := &commandProvider{Base: provutil.Base{Version: buildinfo.Command}, work: work}
		if host != nil {
			p.host = host
		}
		return diffServer{plugin.NewProviderServer(p)}, nil
	})
}

type commandProvider struct {
	provutil.Base
	host engineHost     // nil in tests: nothing is logged
	work *provutil.Work // the commands running now; nil in tests
}

func isCommand(t string) bool { return t == tLocalCommand || t == tRemoteCommand }

// Check is infer's Check (schema.go); CopyToRemote adds its own source check.
func (p *commandProvider) Check(_ context.Context, req plugin.CheckRequest) (plugin.CheckResponse, error) {
	t := string(req.Type)
	schema := inputSchemas[t]
	if schema == nil || t == tLocalRun {
		return plugin.CheckResponse{}, fmt.Errorf("unknown resource type %s", t)
	}
	inputs, failures := checkInputs(schema, req.News)
	if t == tCopyToRemote {
		failures = append(failures, checkCopySource(req.News["source"])...)
	}
	failures = append(failures, unsupported(t, req.News)...)
	return plugin.CheckResponse{Properties: inputs, Failures: failures}, nil
}

// unsupported rejects assetPaths/archivePaths, which this stand-in does not implement.
func unsupported(t string, in resource.PropertyMap) []plugin.CheckFailure {
	if t != tLocalCommand && t != tLocalRun {
		return nil
	}
	var fails []plugin.CheckFailure
	for _, k := range []string{"assetPaths", "archivePaths"} {
		if (provutil.Props{M: in}).Has(k) {
			fails = append(fails, plugin.CheckFailure{Property: resource.PropertyKey(k),
				Reason: k + " is not supported by this project's stand-in command provider"})
		}
	}
	return fails
}

// Diff: see diff.go (the rpc server answers Diff itself; this serves direct callers).
func (p *commandProvider) Diff(_ context.Context, req plugin.DiffRequest) (plugin.DiffResponse, error) {
	return diffInputs(string(req.Type), req.OldInputs, req.NewInputs, req.IgnoreChanges).result(), nil
}

// commandOutputKeys are the outputs of a Command that are not inputs (local/base.go BaseOutputs,
// remote/baseOutputs.go).
var commandOutputKeys = []resource.PropertyKey{"stdout", "stderr", "assets", "archive"}

// withOutputs is the state infer records for a Command: the inputs as checked (secret markers
// kept) plus stdout and stderr, always present and never secret (infer only carries secretness
// from an input to the output of the same name: infer/resource.go ensureDefaultSecrets).
func withOutputs(inputs resource.PropertyMap, stdout, stderr resource.PropertyValue) resource.PropertyMap {
	outs := inputs.Copy()
	outs["stdout"] = stdout
	outs["stderr"] = stderr
	return outs
}

func unknownString() resource.PropertyValue {
	return resource.MakeComputed(resource.NewStringProperty(""))
}

func (p *commandProvider) Create(ctx context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	t := string(req.Type)
	in := provutil.Props{M: req.Properties}
	switch {
	case isCommand(t):
		id, _ := resource.NewUniqueHex(req.Name, 8, 0)
		if req.Preview {
			// infer marks every output that does not mirror an input unknown in a create preview.
			return plugin.CreateResponse{ID: resource.ID(id),
				Properties: withOutputs(req.Properties, unknownString(), unknownString())}, nil
		}
		stdout, stderr := "", ""
		if in.Has("create") {
			var err error
			if stdout, stderr, err = p.run(ctx, t, req.URN, in, in.String("create", ""), nil); err != nil {
				return plugin.CreateResponse{}, err
			}
		}
		return plugin.CreateResponse{ID: resource.ID(id), Status: resource.StatusOK, Properties: withOutputs(
			req.Properties, resource.NewStringProperty(stdout), resource.NewStringProperty(stderr))}, nil
	case t == tCopyToRemote || t == tCopyFile:
		// The state is the inputs; the id has no name prefix (remote/copyController.go, copyfileController.go).
		if req.Preview {
			return plugin.CreateResponse{Properties: req.Properties}, nil
		}
		if err := p.copy(ctx, req.URN, t, in); err != nil {
			return plugin.CreateResponse{}, err
		}
		id, _ := resource.NewUniqueHex("", 8, 0)
		return plugin.CreateResponse{ID: resource.ID(id), Properties: req.Properties, Status: resource.StatusOK}, nil
	}
	return plugin.CreateResponse{}, fmt.Errorf("unknown resource type %s", t)
}

func (p *commandProvider) Update(ctx context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	t := string(req.Type)
	in := provutil.Props{M: req.NewInputs}
	switch {
	case isCommand(t):
		// The previous run's outputs stay unless a command runs (local/commandController.go Update).
		outs := req.NewInputs.Copy()
		for _, k := range commandOutputKeys {
			if v, ok := req.OldOutputs[k]; ok {
				outs[k] = v
			}
		}
		if req.Preview {
			if inputsChanged(inputSchemas[t], req.OldOutputs, req.NewInputs) {
				for _, k := range commandOutputKeys {
					if _, ok := outs[k]; ok {
						outs[k] = resource.MakeComputed(resource.NewStringProperty(""))
					}
				}
			}
			return plugin.UpdateResponse{Properties: outs}, nil
		}
		cmd := in.String("update", "")
		if !in.Has("update") {
			cmd = in.String("create", "")
		}
		if in.Has("update") || in.Has("create") {
			stdout, stderr, err := p.run(ctx, t, req.URN, in, cmd, req.OldOutputs)
			if err != nil {
				return plugin.UpdateResponse{}, err
			}
			outs["stdout"], outs["stderr"] = resource.NewStringProperty(stdout), resource.NewStringProperty(stderr)
		}
		return plugin.UpdateResponse{Properties: outs, Status: resource.StatusOK}, nil
	case t == tCopyToRemote:
		// Copies again only when the source's hash or the remote path changed: a change of the
		// connection alone records the new inputs and copies nothing (remote/copyController.go Update).
		if !req.Preview && copyNeeded(req.OldOutputs, req.NewInputs) {
			if err := p.copy(ctx, req.URN, t, in); err != nil {
				return plugin.UpdateResponse{}, err
			}
		}
		return plugin.UpdateResponse{Properties: req.NewInputs, Status: resource.StatusOK}, nil
	}
	// CopyFile has no Update upstream: every change replaces it, so the engine never asks.
	return plugin.UpdateResponse{}, status.Errorf(codes.Unimplemented, "Update is not implemented for resource %s", req.URN)
}

// inputsChanged is infer's test for marking a Command's own outputs unknown in an update preview
// (infer/resource.go markComputed): some input is unknown, or differs from the value of the same
// name in the old state (an input the old state lacks does not count).
func inputsChanged(schema *objectSchema, oldState, news resource.PropertyMap) bool {
	olds, nw := viaPropertyMap(oldState), viaPropertyMap(news)
	for _, f := range schema.fields {
		k := resource.PropertyKey(f.name)
		if nw[k].ContainsUnknowns() {
			return true
		}
		if old, had := olds[k]; had && !old.DeepEquals(nw[k]) {
			return true
		}
	}
	return false
}

// copyNeeded compares the hashes of the old and new source, and the remote paths.
func copyNeeded(olds, news resource.PropertyMap) bool {
	hash := func(m resource.PropertyMap) string {
		v, _ := peelSecret(m["source"])
		switch {
		case v.IsAsset():
			return v.AssetValue().Hash
		case v.IsArchive():
			return v.ArchiveValue().Hash
		}
		return ""
	}
	o, n := provutil.Props{M: olds}, provutil.Props{M: news}
	return hash(olds) != hash(news) || o.String("remotePath", "") != n.String("remotePath", "")
}

// Delete runs the delete command with the recorded state: its inputs, and its stdout/stderr as
// PULUMI_COMMAND_STDOUT/STDERR. Copies are left in place, as upstream.
func (p *commandProvider) Delete(ctx context.Context, req plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	t := string(req.Type)
	state := provutil.Props{M: req.Outputs}
	if !isCommand(t) || !state.Has("delete") {
		return plugin.DeleteResponse{Status: resource.StatusOK}, nil
	}
	if _, _, err := p.run(ctx, t, req.URN, state, state.String("delete", ""), req.Outputs); err != nil {
		return plugin.DeleteResponse{}, err
	}
	return plugin.DeleteResponse{Status: resource.StatusOK}, nil
}

// Read returns the recorded inputs and state unchanged (infer's default Read): refresh changes nothing.
func (p *commandProvider) Read(_ context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	return plugin.ReadResponse{
		ReadResult: plugin.ReadResult{ID: req.ID, Inputs: req.Inputs, Outputs: req.State},
		Status:     resource.StatusOK,
	}, nil
}

// Invoke is local.run: checked like a resource's inputs (no defaults apply), run, and returned as
// the inputs plus stdout/stderr, secret only where the inputs were (infer/function.go Invoke).
func (p *commandProvider) Invoke(ctx context.Context, req plugin.InvokeRequest) (plugin.InvokeResponse, error) {
	if string(req.Tok) != tLocalRun {
		return plugin.InvokeResponse{}, fmt.Errorf("unknown function %s", req.Tok)
	}
	inputs, failures := checkInputs(localRunInputs, req.Args)
	failures = append(failures, unsupported(tLocalRun, req.Args)...)
	if len(failures) > 0 {
		return plugin.InvokeResponse{Failures: failures}, nil
	}
	in := provutil.Props{M: inputs}
	stdout, stderr, err := p.run(ctx, tLocalCommand, "", in, in.String("command", ""), nil)
	if err != nil {
		return plugin.InvokeResponse{}, err
	}
	return plugin.InvokeResponse{Properties: withOutputs(inputs,
		resource.NewStringProperty(stdout), resource.NewStringProperty(stderr))}, nil
}
