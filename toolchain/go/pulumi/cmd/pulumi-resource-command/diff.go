package main

// Diff as infer computes it (pulumi-go-provider v1.3.0 infer/resource.go Diff/diff) and as its
// server puts it on the wire (provider.go DiffResponse.rpc).

import (
	"context"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// hasUpdate lists the resources that implement Update upstream; a change to any other resource
// replaces it (CopyFile).
var hasUpdate = map[string]bool{tLocalCommand: true, tRemoteCommand: true, tCopyToRemote: true}

// inputDiff is infer's diff of the old inputs (as the engine recorded them) against the checked
// new inputs: property paths to kinds, and whether anything changed at all.
type inputDiff struct {
	changed  bool
	detailed map[string]plugin.PropertyDiff
}

func diffInputs(t string, oldInputs, news resource.PropertyMap, ignoreChanges []string) inputDiff {
	news = news.Copy()
	// ignoreChanges: the recorded value stands in for the new one (top-level keys, as infer's Set).
	for _, k := range ignoreChanges {
		if v, ok := oldInputs[resource.PropertyKey(k)]; ok {
			news[resource.PropertyKey(k)] = v
		}
	}
	for k := range news {
		if k == "version" || strings.HasPrefix(string(k), "__") {
			delete(news, k)
		}
	}
	objDiff := viaPropertyMap(oldInputs).Diff(viaPropertyMap(news))
	detailed := plugin.NewDetailedDiffFromObjectDiff(objDiff, false)
	schema := inputSchemas[t]
	for path, d := range detailed {
		// Only a whole top-level key matches replaceOnChanges here (infer looks the path up as a
		// property name): a change inside triggers is an update for the provider, and the SDK's
		// replaceOnChanges: ["triggers[*]"] resource option makes the engine replace.
		f, ok := schema.field(path)
		if !hasUpdate[t] || (ok && f.replaceOnChanges) {
			d.Kind = d.Kind.AsReplace()
			detailed[path] = d
		}
	}
	return inputDiff{changed: objDiff.AnyChanges(), detailed: detailed}
}

// viaPropertyMap converts m the way the go-provider sees values (property.Map): output values
// become plain, secret or unknown values.
func viaPropertyMap(m resource.PropertyMap) resource.PropertyMap {
	return resource.ToResourcePropertyValue(resource.FromResourcePropertyValue(resource.NewProperty(m))).ObjectValue()
}

// result is the diff for the plugin.Provider interface (tests, and any caller not going through rpc).
func (d inputDiff) result() plugin.DiffResult {
	if !d.changed && len(d.detailed) == 0 {
		return plugin.DiffResult{Changes: plugin.DiffNone}
	}
	res := plugin.DiffResult{Changes: plugin.DiffNone, DetailedDiff: d.detailed}
	if d.changed {
		res.Changes = plugin.DiffSome
	}
	for _, k := range d.topLevel(func(plugin.DiffKind) bool { return true }) {
		res.ChangedKeys = append(res.ChangedKeys, resource.PropertyKey(k))
	}
	for _, k := range d.topLevel(isReplace) {
		res.ReplaceKeys = append(res.ReplaceKeys, resource.PropertyKey(k))
	}
	return res
}

func isReplace(k plugin.DiffKind) bool {
	return k == plugin.DiffAddReplace || k == plugin.DiffUpdateReplace || k == plugin.DiffDeleteReplace
}

// topLevel lists the top-level property names of the detailed diff entries whose kind matches.
func (d inputDiff) topLevel(match func(plugin.DiffKind) bool) []string {
	seen := map[string]bool{}
	var keys []string
	for path, pd := range d.detailed {
		if !match(pd.Kind) {
			continue
		}
		head := path
		if pp, err := resource.ParsePropertyPath(path); err == nil && len(pp) > 0 {
			if s, ok := pp[0].(string); ok {
				head = s
			}
		}
		if !seen[head] {
			seen[head] = true
			keys = append(keys, head)
		}
	}
	return keys
}

// rpc is the DiffResponse as go-provider sends it: changes from the input diff, the detailed diff
// by property path, Diffs/Replaces by top-level property, HasDetailedDiff set.
func (d inputDiff) rpc() *pulumirpc.DiffResponse {
	resp := &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_NONE,
		HasDetailedDiff: true,
		DetailedDiff:    map[string]*pulumirpc.PropertyDiff{},
		Diffs:           d.topLevel(func(plugin.DiffKind) bool { return true }),
		Replaces:        d.topLevel(isReplace),
	}
	if d.changed {
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	kinds := map[plugin.DiffKind]pulumirpc.PropertyDiff_Kind{
		plugin.DiffAdd: pulumirpc.PropertyDiff_ADD, plugin.DiffAddReplace: pulumirpc.PropertyDiff_ADD_REPLACE,
		plugin.DiffDelete: pulumirpc.PropertyDiff_DELETE, plugin.DiffDeleteReplace: pulumirpc.PropertyDiff_DELETE_REPLACE,
		plugin.DiffUpdate: pulumirpc.PropertyDiff_UPDATE, plugin.DiffUpdateReplace: pulumirpc.PropertyDiff_UPDATE_REPLACE,
	}
	for path, pd := range d.detailed {
		resp.DetailedDiff[path] = &pulumirpc.PropertyDiff{Kind: kinds[pd.Kind], InputDiff: pd.InputDiff}
	}
	return resp
}

// diffServer serves Diff itself so that the response has go-provider's shape (the SDK's generic
// server would list nested paths in Diffs/Replaces, send DeleteReplace as Delete and leave
// HasDetailedDiff unset); every other method goes to the generic server.
type diffServer struct {
	pulumirpc.ResourceProviderServer
}

func (s diffServer) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	t := string(resource.URN(req.GetUrn()).Type())
	opts := plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true}
	oldInputs, err := plugin.UnmarshalProperties(req.GetOldInputs(), opts)
	if err != nil {
		return nil, err
	}
	if req.GetOldInputs() == nil {
		// An engine that does not send old inputs: infer takes them from the state.
		olds, err := plugin.UnmarshalProperties(req.GetOlds(), opts)
		if err != nil {
			return nil, err
		}
		oldInputs = inputsFromState(t, olds)
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), opts)
	if err != nil {
		return nil, err
	}
	return diffInputs(t, oldInputs, news, req.GetIgnoreChanges()).rpc(), nil
}

// inputsFromState keeps the state's values of the input properties.
func inputsFromState(t string, state resource.PropertyMap) resource.PropertyMap {
	out := resource.PropertyMap{}
	if s := inputSchemas[t]; s != nil {
		for _, f := range s.fields {
			out[resource.PropertyKey(f.name)] = state[resource.PropertyKey(f.name)]
		}
	}
	return out
}
