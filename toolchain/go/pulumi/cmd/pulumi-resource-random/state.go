package main

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Keys the bridge reserves in the state it records (pkg/reservedkeys in pulumi-terraform-bridge).
const (
	metaKey          = "__meta"
	rawStateDeltaKey = "__pulumi_raw_state_delta"
)

// snakeCase is the default Pulumi->Terraform name mapping the raw state delta assumes
// (tfbridge.PulumiToTerraformName without schema): a name that maps differently is "renamed".
func snakeCase(name string) string {
	var b strings.Builder
	for _, r := range name {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// rawStateDelta builds the __pulumi_raw_state_delta the bridge writes with EnableRawStateDelta
// (pkg/tfbridge/rawstate.go, RawStateComputeDelta): an object delta that names renamed
// attributes and marks every non-null map ("map") and list ("arr") attribute; scalars whose
// Pulumi value equals the Terraform value need no entry.
func rawStateDelta(s *resourceSchema, outs resource.PropertyMap) resource.PropertyValue {
	obj := map[string]any{}
	renamed := map[string]any{}
	deltas := map[string]any{}
	for _, a := range s.attrs {
		if snakeCase(a.name) != a.tf {
			renamed[a.name] = a.tf
		}
		if plain(outs, a.name).IsNull() {
			continue
		}
		switch a.kind {
		case kStringMap:
			deltas[a.name] = map[string]any{"map": map[string]any{}}
		case kStringList:
			deltas[a.name] = map[string]any{"arr": map[string]any{}}
		}
	}
	if len(renamed) > 0 {
		obj["renamed"] = renamed
	}
	if len(deltas) > 0 {
		obj["ps"] = deltas
	}
	return resource.NewPropertyValue(map[string]any{"obj": obj})
}

// recordedState turns a complete (known) state into the outputs the bridge records: every
// schema attribute (null when unset), sensitive attributes as secrets, inputs that were secret
// stay secret, __meta with the Terraform schema version (when not 0) and the raw state delta.
func recordedState(s *resourceSchema, state, inputs resource.PropertyMap) resource.PropertyMap {
	outs := resource.PropertyMap{}
	for _, a := range s.attrs {
		v := plain(state, a.name)
		in, wasInput := inputs[resource.PropertyKey(a.name)]
		if !v.IsNull() && (a.sensitive || (wasInput && in.ContainsSecrets())) {
			v = resource.MakeSecret(v)
		}
		outs[resource.PropertyKey(a.name)] = v
	}
	if s.schemaVersion != 0 {
		outs[metaKey] = resource.NewStringProperty(fmt.Sprintf(`{"schema_version":"%d"}`, s.schemaVersion))
	}
	outs[rawStateDeltaKey] = rawStateDelta(s, outs)
	return outs
}

// upgradeState fills what the provider's state upgraders (upgrade*StateV0/V1/V2toV3 in
// resource_password.go and resource_string.go) fill in older states: null length, character
// class flags and minimums get their values, numeric follows number.
func upgradeState(s *resourceSchema, state resource.PropertyMap) resource.PropertyMap {
	if s.token != tPassword && s.token != tString {
		return state
	}
	up := state.Copy()
	setIfNull := func(k string, v resource.PropertyValue) {
		if plain(up, k).IsNull() {
			up[resource.PropertyKey(k)] = v
		}
	}
	setIfNull("length", resource.NewNumberProperty(float64(len(stringOf(state["result"])))))
	for _, k := range []string{"minNumeric", "minUpper", "minLower", "minSpecial"} {
		setIfNull(k, resource.NewNumberProperty(0))
	}
	for _, k := range []string{"special", "upper", "lower", "number"} {
		setIfNull(k, resource.NewBoolProperty(true))
	}
	setIfNull("numeric", plain(up, "number"))
	if s.token == tPassword && plain(up, "bcryptHash").IsNull() {
		if h, err := bcryptHash(stringOf(up["result"])); err == nil {
			up["bcryptHash"] = resource.NewStringProperty(h)
		}
	}
	return up
}

// inputsFromImport mirrors tfbridge.ExtractInputsFromOutputs for an import: every input
// attribute whose value is not null, false, 0, "" or empty.
func inputsFromImport(s *resourceSchema, state resource.PropertyMap) resource.PropertyMap {
	in := resource.PropertyMap{}
	for _, a := range s.attrs {
		if !a.input {
			continue
		}
		v := plain(state, a.name)
		zero := v.IsNull() ||
			(v.IsBool() && !v.BoolValue()) ||
			(v.IsNumber() && v.NumberValue() == 0) ||
			(v.IsString() && v.StringValue() == "") ||
			(v.IsArray() && len(v.ArrayValue()) == 0) ||
			(v.IsObject() && len(v.ObjectValue()) == 0)
		if a.required || !zero {
			in[resource.PropertyKey(a.name)] = v
		}
	}
	return in
}

// inputsFromRefresh mirrors ExtractInputsFromOutputs for a refresh: the old inputs, each taking
// the value now in the state; inputs the state does not have are dropped.
func inputsFromRefresh(oldInputs, outs resource.PropertyMap) resource.PropertyMap {
	in := resource.PropertyMap{}
	for k := range oldInputs {
		if v, ok := outs[k]; ok && !strings.HasPrefix(string(k), "__") {
			in[k] = v
		}
	}
	return in
}
