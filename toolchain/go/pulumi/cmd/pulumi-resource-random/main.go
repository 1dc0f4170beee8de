// Command pulumi-resource-random is this project's stand-in for the Pulumi "random" provider.
//
// It is NOT the upstream provider (github.com/pulumi/pulumi-random, a bridge of Terraform's
// random provider): the Go module proxy this project can reach does not serve that module, so
// toolchain/bootstrap builds this one instead. It implements every resource of @pulumi/random
// 4.21.x with the same tokens and properties, and records the same state as the bridged
// upstream provider (inputs as the program sent them; outputs with every attribute, secrets,
// __meta and __pulumi_raw_state_delta), so that stacks move between the two without diffs.
// Where a real pulumi-resource-random of the pinned version is installed, that one is used.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"

	"github.com/google/uuid"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	"sparks/toolchain/pulumi/internal/buildinfo"
	"sparks/toolchain/pulumi/internal/provutil"
)

const (
	tPassword = "random:index/randomPassword:RandomPassword"
	tString   = "random:index/randomString:RandomString"
	tID       = "random:index/randomId:RandomId"
	tInteger  = "random:index/randomInteger:RandomInteger"
	tUUID     = "random:index/randomUuid:RandomUuid"
	tUUID4    = "random:index/randomUuid4:RandomUuid4"
	tUUID7    = "random:index/randomUuid7:RandomUuid7"
	tBytes    = "random:index/randomBytes:RandomBytes"
	tShuffle  = "random:index/randomShuffle:RandomShuffle"
	tPet      = "random:index/randomPet:RandomPet"
)

func main() {
	provutil.Serve("random", func(*provider.HostClient, *provutil.Work) (pulumirpc.ResourceProviderServer, error) {
		return plugin.NewProviderServer(&randomProvider{Base: provutil.Base{Version: buildinfo.Random}}), nil
	})
}

type randomProvider struct {
	provutil.Base
}

func schemaFor(t string) (*resourceSchema, error) {
	s, ok := schemas[t]
	if !ok {
		return nil, fmt.Errorf("resource type %s is not implemented by this project's stand-in random provider "+
			"(see toolchain/README.md)", t)
	}
	return s, nil
}

// Check returns the inputs exactly as the program sent them (the bridge's Check applies no
// Terraform defaults and none of these inputs is sensitive); only validation is added.
func (p *randomProvider) Check(_ context.Context, req plugin.CheckRequest) (plugin.CheckResponse, error) {
	s, err := schemaFor(string(req.Type))
	if err != nil {
		return plugin.CheckResponse{}, err
	}
	return plugin.CheckResponse{Properties: req.News, Failures: validate(s, req.URN.Name(), req.News)}, nil
}

func (p *randomProvider) Diff(_ context.Context, req plugin.DiffRequest) (plugin.DiffResponse, error) {
	s, err := schemaFor(string(req.Type))
	if err != nil {
		return plugin.DiffResponse{}, err
	}
	return diff(s, upgradeState(s, req.OldOutputs), req.NewInputs)
}

func (p *randomProvider) Create(_ context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	s, err := schemaFor(string(req.Type))
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	planned, err := plan(s, nil, req.Properties)
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	if req.Preview {
		return plugin.CreateResponse{Properties: planned}, nil
	}
	state, err := generate(s.token, planned)
	if err != nil {
		return plugin.CreateResponse{}, err
	}
	outs := recordedState(s, state, req.Properties)
	return plugin.CreateResponse{ID: resource.ID(s.id(outs)), Properties: outs, Status: resource.StatusOK}, nil
}

// Update is reached for in-place changes (keepers that only gain null values, overrideSpecial
// "" -> unset): as the provider's Update, the planned state becomes the state.
func (p *randomProvider) Update(_ context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	s, err := schemaFor(string(req.Type))
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	planned, err := plan(s, upgradeState(s, req.OldOutputs), req.NewInputs)
	if err != nil {
		return plugin.UpdateResponse{}, err
	}
	return plugin.UpdateResponse{Properties: recordedState(s, planned, req.NewInputs), Status: resource.StatusOK}, nil
}

// Read: a refresh keeps the state (the provider's Read does nothing) re-recorded in the current
// shape; with only an ID it is an import (each resource's ImportState).
func (p *randomProvider) Read(_ context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	s, err := schemaFor(string(req.Type))
	if err != nil {
		return plugin.ReadResponse{}, err
	}
	if len(req.State) != 0 {
		outs := recordedState(s, upgradeState(s, req.State), req.Inputs)
		return plugin.ReadResponse{ReadResult: plugin.ReadResult{
			ID: resource.ID(s.id(outs)), Inputs: inputsFromRefresh(req.Inputs, outs), Outputs: outs,
		}, Status: resource.StatusOK}, nil
	}
	state, err := importState(s.token, string(req.ID))
	if err != nil {
		return plugin.ReadResponse{}, err
	}
	outs := recordedState(s, state, nil)
	return plugin.ReadResponse{ReadResult: plugin.ReadResult{
		ID: resource.ID(s.id(outs)), Inputs: inputsFromImport(s, state), Outputs: outs,
	}, Status: resource.StatusOK}, nil
}

func (p *randomProvider) Delete(context.Context, plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	return plugin.DeleteResponse{Status: resource.StatusOK}, nil
}

// diagError renders a Terraform error diagnostic without attribute the way the bridge's
// processDiagnostics does: "Summary: Detail".
func diagError(summary, detail string) error { return fmt.Errorf("%s: %s", summary, detail) }

const retryMsg = "Retry the Terraform operation. If the error still occurs or happens regularly, please " +
	"contact the provider developer with hardware and operating system information.\n\n"

func randomReadError(err error) error {
	return diagError("Random Read Error", "While attempting to generate a random value for this resource, "+
		"a read error was generated.\n\n"+retryMsg+"Original Error: "+err.Error())
}

func num(v resource.PropertyValue) int64 {
	if v.IsNumber() {
		return int64(v.NumberValue())
	}
	return 0
}

func boolean(v resource.PropertyValue) bool { return v.IsBool() && v.BoolValue() }

// generate fills the computed attributes of a planned state, as each resource's Create.
func generate(t string, planned resource.PropertyMap) (resource.PropertyMap, error) {
	st := planned.Copy()
	get := func(k string) resource.PropertyValue { return plain(planned, k) }
	set := func(k string, v any) { st[resource.PropertyKey(k)] = resource.NewPropertyValue(v) }
	switch t {
	case tPassword, tString:
		result, err := randomString(stringParams{
			length: num(get("length")),
			upper:  boolean(get("upper")), minUpper: num(get("minUpper")),
			lower: boolean(get("lower")), minLower: num(get("minLower")),
			numeric: boolean(get("numeric")), minNumeric: num(get("minNumeric")),
			special: boolean(get("special")), minSpecial: num(get("minSpecial")),
			overrideSpecial: stringOf(get("overrideSpecial")),
		})
		if err != nil {
			return nil, randomReadError(err)
		}
		set("result", result)
		set("id", result)
		if t == tPassword {
			h, err := bcryptHash(result)
			if err != nil {
				return nil, diagError("Hash Generation Error", "While attempting to generate a hash from the password an error occurred.\n\n"+
					"Verify that the state contains a populated 'result' field, using 'terraform state show', and retry the operation\n\n"+
					"Original Error: "+err.Error())
			}
			set("bcryptHash", h)
			set("id", "none")
		}
	case tID:
		b := make([]byte, num(get("byteLength")))
		if _, err := rand.Read(b); err != nil {
			return nil, randomReadError(err)
		}
		b64url, b64std, hexs, dec := idEncodings(b, stringOf(get("prefix")))
		set("b64Url", b64url)
		set("b64Std", b64std)
		set("hex", hexs)
		set("dec", dec)
		unprefixed, _, _, _ := idEncodings(b, "")
		set("id", unprefixed)
	case tInteger:
		lo, hi := num(get("min")), num(get("max"))
		if hi < lo {
			return nil, diagError("Create Random Integer Error",
				"The minimum (minVal) value needs to be smaller than or equal to maximum (maxVal) value.")
		}
		n := randomInteger(lo, hi, stringOf(get("seed")))
		set("result", float64(n))
		set("id", strconv.FormatInt(n, 10))
	case tUUID:
		u, err := hashicorpUUID()
		if err != nil {
			return nil, diagError("Create Random UUID error", "There was an error during generation of a UUID.\n\n"+
				retryMsg+"Original Error: "+err.Error())
		}
		set("result", u)
		set("id", u)
	case tUUID4, tUUID7:
		gen, summary := uuid.NewRandom, "Create Random UUID v4 error"
		if t == tUUID7 {
			gen, summary = uuid.NewV7, "Create Random UUID v7 error"
		}
		u, err := gen()
		if err != nil {
			return nil, diagError(summary, "There was an error during generation of a UUID.\n\n"+
				retryMsg+"Original Error: "+err.Error())
		}
		set("result", u.String())
		set("id", u.String())
	case tBytes:
		b := make([]byte, num(get("length")))
		if _, err := rand.Read(b); err != nil {
			return nil, diagError("Create Random bytes error", "There was an error during random generation.\n\n"+
				retryMsg+"Original Error: "+err.Error())
		}
		_, b64, hexs, _ := idEncodings(b, "")
		set("base64", b64)
		set("hex", hexs)
	case tShuffle:
		var items []string
		for _, v := range get("inputs").ArrayValue() {
			items = append(items, stringOf(v))
		}
		count := int64(len(items))
		if rc := get("resultCount"); !rc.IsNull() {
			count = num(rc)
		}
		set("results", shuffle(items, count, stringOf(get("seed"))))
		set("id", "-")
	case tPet:
		set("id", petName(num(get("length")), stringOf(get("prefix")), stringOf(get("separator"))))
	default:
		return nil, fmt.Errorf("resource type %s is not implemented", t)
	}
	return st, nil
}
