package main

import (
	"errors"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"

	"sparks/toolchain/pulumi/internal/provutil"
)

// Planning follows what terraform-plugin-framework does in PlanResourceChange for these schemas,
// which the bridge calls from Create (preview) and Diff (pkg/pf/tfbridge/provider_create.go,
// provider_diff.go): configured values are taken as they are, unset Optional+Computed attributes
// get their static Default, number/numeric go through NumberNumericAttributePlanModifier, and
// Computed attributes keep their prior state value (UseStateForUnknown) or are unknown on create.

func unknown() resource.PropertyValue { return resource.MakeComputed(resource.NewStringProperty("")) }

// plain strips secret markers; a missing value is null.
func plain(m resource.PropertyMap, k string) resource.PropertyValue {
	v, ok := m[resource.PropertyKey(k)]
	if !ok {
		return resource.NewNullProperty()
	}
	return provutil.Unsecret(v)
}

func stringOf(v resource.PropertyValue) string {
	v = provutil.Unsecret(v)
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

func isUnknown(v resource.PropertyValue) bool { return v.ContainsUnknowns() }

// errNumberNumeric is the diagnostic of boolplanmodifiers.NumberNumericAttributePlanModifier, as the
// bridge's processDiagnostics renders an attribute error outside Check.
var errNumberNumeric = errors.New(`[AttributeName("number")] Number and numeric are both configured ` +
	`with different values: Number is deprecated, use numeric instead`)

// planNumberNumeric mirrors NumberNumericAttributePlanModifier: both unset plans true, one set
// plans that one, both set must agree.
func planNumberNumeric(config resource.PropertyMap) (resource.PropertyValue, error) {
	number, numeric := plain(config, "number"), plain(config, "numeric")
	switch {
	case number.IsBool() && numeric.IsBool() && number.BoolValue() != numeric.BoolValue():
		return resource.PropertyValue{}, errNumberNumeric
	case number.IsNull() && numeric.IsNull():
		return resource.NewBoolProperty(true), nil
	case numeric.IsNull():
		return number, nil
	default:
		return numeric, nil
	}
}

// plan computes the planned state. prior is nil when the resource is being created.
func plan(s *resourceSchema, prior, config resource.PropertyMap) (resource.PropertyMap, error) {
	planned := resource.PropertyMap{}
	for _, a := range s.attrs {
		cfg := plain(config, a.name)
		var v resource.PropertyValue
		switch {
		case a.numberNumeric:
			nn, err := planNumberNumeric(config)
			if err != nil {
				return nil, err
			}
			v = nn
		case a.input && !cfg.IsNull():
			v = cfg
		case a.input && a.def != nil:
			v = *a.def
		case a.computed && prior != nil:
			v = plain(prior, a.name)
		case a.computed:
			v = unknown()
		default:
			v = resource.NewNullProperty()
		}
		planned[resource.PropertyKey(a.name)] = v
	}
	return planned, nil
}

func sameValue(a, b resource.PropertyValue) bool {
	if isUnknown(a) || isUnknown(b) {
		return false
	}
	return provutil.Unsecret(a).DeepEquals(provutil.Unsecret(b))
}

// keepersNeedReplace mirrors mapplanmodifiers.RequiresReplaceIfValuesNotNull: a change replaces
// unless it only adds keys with null values or goes from null to a map of nulls. Note that
// clearing keepers (map -> null) does replace, while {} -> null does not.
func keepersNeedReplace(cfg, state resource.PropertyValue) bool {
	if sameValue(cfg, state) {
		return false
	}
	var cfgMap resource.PropertyMap
	if cfg.IsObject() {
		cfgMap = cfg.ObjectValue()
	}
	if state.IsNull() {
		for _, v := range cfgMap {
			if !v.IsNull() {
				return true
			}
		}
		return false
	}
	stateMap := state.ObjectValue()
	for k, v := range cfgMap {
		sv, ok := stateMap[k]
		if !ok && v.IsNull() {
			continue
		}
		if !sameValue(v, sv) {
			return true
		}
	}
	for k := range stateMap {
		if _, ok := cfgMap[k]; !ok {
			return true
		}
	}
	return false
}

// needsReplace applies the attribute's plan modifier to a changed attribute.
func needsReplace(a attr, cfg, state resource.PropertyValue) bool {
	switch a.replace {
	case replaceOnChange:
		return true
	case replaceKeepers:
		return keepersNeedReplace(cfg, state)
	case replaceUnlessEmptyToNull:
		// stringplanmodifiers.RequiresReplaceUnlessEmptyStringToNull: "" -> null updates in place.
		if isUnknown(cfg) {
			return false
		}
		if !cfg.IsNull() || state.IsNull() {
			return true
		}
		return !state.IsString() || state.StringValue() != ""
	}
	return false
}

// diff compares the prior state with the plan for the new inputs, as the bridge's Diff does
// (prior *state*, not prior inputs: defaults recorded only in the outputs cause no change).
func diff(s *resourceSchema, prior, news resource.PropertyMap) (plugin.DiffResult, error) {
	planned, err := plan(s, prior, news)
	if err != nil {
		return plugin.DiffResult{}, err
	}
	res := plugin.DiffResult{Changes: plugin.DiffNone}
	detailed := map[string]plugin.PropertyDiff{}
	for _, a := range s.attrs {
		old, nu := plain(prior, a.name), planned[resource.PropertyKey(a.name)]
		if sameValue(old, nu) || (old.IsNull() && nu.IsNull()) {
			continue
		}
		key := resource.PropertyKey(a.name)
		res.ChangedKeys = append(res.ChangedKeys, key)
		replace := needsReplace(a, plain(news, a.name), old)
		if replace {
			res.ReplaceKeys = append(res.ReplaceKeys, key)
		}
		addDetailedDiff(detailed, a.name, old, nu, replace)
	}
	if len(res.ChangedKeys) > 0 {
		res.Changes = plugin.DiffSome
		res.DetailedDiff = detailed
	}
	return res, nil
}

// addDetailedDiff records a change at the level the bridge's detailed diff reports it: map keys
// and list elements individually, other values as a whole.
func addDetailedDiff(out map[string]plugin.PropertyDiff, path string, old, nu resource.PropertyValue, replace bool) {
	put := func(p string, k plugin.DiffKind) {
		if replace {
			k = k.AsReplace()
		}
		out[p] = plugin.PropertyDiff{Kind: k}
	}
	switch {
	case old.IsNull():
		put(path, plugin.DiffAdd)
	case nu.IsNull():
		put(path, plugin.DiffDelete)
	case old.IsObject() && nu.IsObject():
		om, nm := old.ObjectValue(), nu.ObjectValue()
		keys := map[resource.PropertyKey]bool{}
		for k := range om {
			keys[k] = true
		}
		for k := range nm {
			keys[k] = true
		}
		for k := range keys {
			o, inOld := om[k]
			n, inNew := nm[k]
			p := path + "." + string(k)
			switch {
			case !inOld:
				put(p, plugin.DiffAdd)
			case !inNew:
				put(p, plugin.DiffDelete)
			case !sameValue(o, n):
				put(p, plugin.DiffUpdate)
			}
		}
	case old.IsArray() && nu.IsArray():
		oa, na := old.ArrayValue(), nu.ArrayValue()
		for i := 0; i < len(oa) || i < len(na); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(oa):
				put(p, plugin.DiffAdd)
			case i >= len(na):
				put(p, plugin.DiffDelete)
			case !sameValue(oa[i], na[i]):
				put(p, plugin.DiffUpdate)
			}
		}
	default:
		put(path, plugin.DiffUpdate)
	}
}
