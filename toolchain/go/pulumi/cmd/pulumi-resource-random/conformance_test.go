package main

// Conformance with the state upstream pulumi-random v4.21.1 records.
//
// testdata/upstream-state.json holds, per resource, what the program sends ("program"), the
// inputs upstream records ("inputs") and the outputs it records ("outputs"). How each field is
// derived (pulumi-terraform-bridge v3.135.0, terraform-provider-random f8d869dc98d9):
//   - inputs: pkg/pf/tfbridge/provider_check.go returns the program's inputs unchanged (no
//     Pulumi-level defaults for random; MarkSchemaSecrets finds no sensitive input).
//   - outputs: provider_create.go decodes the Terraform state after ApplyResourceChange: every
//     attribute of the TF schema under its Pulumi name, null when unset, Optional+Computed
//     attributes with their Default (booldefault/int64default/stringdefault in resource_*.go),
//     number/numeric from NumberNumericAttributePlanModifier, sensitive attributes
//     (password result/bcrypt_hash, bytes base64/hex) as secrets (pkg/convert/secret.go).
//   - "__meta": resource_state.go updateMeta writes schema_version when the TF schema version
//     is not 0: passwordSchemaV3 has Version 3, stringSchemaV3 has Version 2.
//   - "__pulumi_raw_state_delta": written because pulumi-random sets EnableRawStateDelta
//     (provider/resources.go); pkg/tfbridge/rawstate.go gives an object delta listing renamed
//     properties (shuffle input->inputs, result->results) and "map"/"arr" deltas for non-null
//     maps and lists.
//   - id: the TF "id" attribute (extractID), for random_bytes computeRandomBytesID (base64).
// The random values themselves are arbitrary; only the shape matters for the diff.

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

type fixture struct {
	Type    string         `json:"type"`
	Program map[string]any `json:"program"`
	Inputs  map[string]any `json:"inputs"`
	Secrets []string       `json:"secrets"`
	ID      string         `json:"id"`
	Outputs map[string]any `json:"outputs"`
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/upstream-state.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Resources []fixture }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Resources
}

func (f fixture) outputs() resource.PropertyMap {
	m := resource.NewPropertyMapFromMap(f.Outputs)
	for _, k := range f.Secrets {
		m[resource.PropertyKey(k)] = resource.MakeSecret(m[resource.PropertyKey(k)])
	}
	return m
}

func urn(t string) resource.URN {
	return resource.NewURN("dev", "sparks", "", tokens.Type(t), "res")
}

var prov = &randomProvider{}

func check(t *testing.T, typ string, news resource.PropertyMap) plugin.CheckResponse {
	t.Helper()
	resp, err := prov.Check(context.Background(), plugin.CheckRequest{URN: urn(typ), Type: tokens.Type(typ), News: news})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func diffOf(t *testing.T, typ string, oldOuts, news resource.PropertyMap) plugin.DiffResponse {
	t.Helper()
	resp, err := prov.Diff(context.Background(), plugin.DiffRequest{
		URN: urn(typ), Type: tokens.Type(typ), OldOutputs: oldOuts, NewInputs: news,
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func create(t *testing.T, typ string, ins resource.PropertyMap) plugin.CreateResponse {
	t.Helper()
	resp, err := prov.Create(context.Background(), plugin.CreateRequest{URN: urn(typ), Type: tokens.Type(typ), Properties: ins})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Upstream state previewed with the stand-in: Check records what upstream records, and the
// diff against upstream's outputs is empty (pkg/pf/tfbridge/provider_diff.go diffs the prior
// state against the plan, so defaults present only in the outputs cause no change).
func TestUpstreamStateHasNoDiff(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.Type, func(t *testing.T) {
			checked := check(t, f.Type, resource.NewPropertyMapFromMap(f.Program))
			if len(checked.Failures) > 0 {
				t.Fatalf("check failures: %v", checked.Failures)
			}
			if want := resource.NewPropertyMapFromMap(f.Inputs); !checked.Properties.DeepEquals(want) {
				t.Fatalf("checked inputs\n got %v\nwant %v", checked.Properties, want)
			}
			if d := diffOf(t, f.Type, f.outputs(), checked.Properties); d.Changes != plugin.DiffNone {
				t.Fatalf("diff against upstream state: %+v", d)
			}
		})
	}
}

// State written by the stand-in has upstream's shape (same keys, same secrets, same __meta and
// raw state delta, same ID rule) and round-trips with no diff.
func TestStandInStateMatchesUpstreamShape(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.Type, func(t *testing.T) {
			ins := check(t, f.Type, resource.NewPropertyMapFromMap(f.Program)).Properties
			got := create(t, f.Type, ins)
			want := f.outputs()
			if keys(got.Properties) != keys(want) {
				t.Fatalf("output keys\n got %s\nwant %s", keys(got.Properties), keys(want))
			}
			for k, w := range want {
				g := got.Properties[k]
				if g.IsSecret() != w.IsSecret() || g.IsNull() != w.IsNull() {
					t.Errorf("%s: secret/null mismatch: got %v want %v", k, g, w)
				}
			}
			for _, k := range []resource.PropertyKey{metaKey, rawStateDeltaKey} {
				if !got.Properties[k].DeepEquals(want[k]) {
					t.Errorf("%s: got %v want %v", k, got.Properties[k], want[k])
				}
			}
			if f.Type == tBytes && string(got.ID) != stringOf(got.Properties["base64"]) {
				t.Errorf("RandomBytes id %q is not its base64", got.ID)
			}
			if d := diffOf(t, f.Type, got.Properties, ins); d.Changes != plugin.DiffNone {
				t.Fatalf("round trip diff: %+v", d)
			}
		})
	}
}

func keys(m resource.PropertyMap) string {
	var ks []string
	for k := range m {
		ks = append(ks, string(k))
	}
	sort.Strings(ks)
	b, _ := json.Marshal(ks)
	return string(b)
}
