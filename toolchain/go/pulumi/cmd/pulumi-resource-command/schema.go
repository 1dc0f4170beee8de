package main

// The input schemas of the resources and of local.run, and the Check derived from them.
//
// Upstream (pulumi-command v1.2.1) declares its inputs as Go structs with `pulumi:"name,optional"`
// and `provider:"secret"` / `provider:"replaceOnChanges"` tags plus Annotate/SetDefault calls
// (provider/pkg/provider/{common,local,remote}/*.go; the result is schema.json), and lets
// pulumi-go-provider's infer framework check inputs: decode into the struct with the SDK's mapper
// (its error texts, which name the Go types), apply the defaults, re-encode, mark the tagged fields
// secret (infer/resource.go Check, infer/apply_defaults.go, infer/apply_secrets.go). This file
// describes the same structs as data and reproduces that check.

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

type kind int

const (
	kString kind = iota
	kNumber      // Go float64
	kInt         // Go int: a number is truncated, as the mapper's float64→int conversion does
	kBool
	kStringList
	kStringMap
	kAnyList
	kObject
	kAssetOrArchive // types.AssetOrArchive: any value decodes; CopyToRemote's own Check judges it
)

type field struct {
	name             string
	kind             kind
	required         bool
	secret           bool // provider:"secret"
	def              any  // a.SetDefault
	replaceOnChanges bool
	goType           string // the Go type upstream decodes into, as the mapper's messages print it
	object           *objectSchema
}

type objectSchema struct {
	goType string // package-qualified name of upstream's struct, e.g. "remote.Connection"
	fields []field
}

func (o *objectSchema) shortName() string { return o.goType[strings.Index(o.goType, ".")+1:] }

func (o *objectSchema) field(name string) (field, bool) {
	for _, f := range o.fields {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

func str(name string) field { return field{name: name, kind: kString} }

// Field lists in upstream's declaration order (embedded structs expanded in place): the mapper
// reports failures in that order.
var (
	// common.ResourceInputs
	resourceInputs = []field{
		{name: "triggers", kind: kAnyList, replaceOnChanges: true},
		str("create"), str("update"), str("delete"),
	}
	// local.BaseInputs
	localBaseInputs = []field{
		str("stdin"),
		{name: "logging", kind: kString, goType: "local.Logging"},
		{name: "interpreter", kind: kStringList},
		str("dir"),
		{name: "environment", kind: kStringMap},
		{name: "assetPaths", kind: kStringList},
		{name: "archivePaths", kind: kStringList},
		{name: "addPreviousOutputInEnv", kind: kBool},
	}
	// remote.connectionBase, with the defaults both Connection and ProxyConnection set.
	connectionBase = []field{
		{name: "user", kind: kString, def: "root"},
		{name: "password", kind: kString, secret: true},
		{name: "host", kind: kString, required: true},
		{name: "port", kind: kNumber, def: 22.0},
		{name: "privateKey", kind: kString, secret: true},
		{name: "privateKeyPassword", kind: kString, secret: true},
		str("agentSocketPath"),
		{name: "dialErrorLimit", kind: kInt, def: 10.0},
		{name: "perDialTimeout", kind: kInt, def: 15.0},
		str("hostKey"),
	}
	proxyConnection = &objectSchema{goType: "remote.ProxyConnection", fields: connectionBase}
	connection      = &objectSchema{goType: "remote.Connection",
		fields: append(append([]field{}, connectionBase...), field{name: "proxy", kind: kObject, object: proxyConnection})}
	connectionField = field{name: "connection", kind: kObject, required: true, secret: true, object: connection}

	localCommandInputs = &objectSchema{goType: "local.CommandInputs",
		fields: append(append([]field{}, resourceInputs...), localBaseInputs...)}
	localRunInputs = &objectSchema{goType: "local.RunInputs",
		fields: append(append([]field{}, localBaseInputs...), field{name: "command", kind: kString, required: true})}
	remoteCommandInputs = &objectSchema{goType: "remote.CommandInputs",
		fields: append(append([]field{}, resourceInputs...),
			str("stdin"),
			field{name: "logging", kind: kString, goType: "remote.Logging"},
			connectionField,
			field{name: "environment", kind: kStringMap},
			field{name: "addPreviousOutputInEnv", kind: kBool})}
	copyToRemoteInputs = &objectSchema{goType: "remote.CopyToRemoteInputs", fields: []field{
		connectionField,
		{name: "triggers", kind: kAnyList, replaceOnChanges: true},
		{name: "source", kind: kAssetOrArchive, required: true},
		{name: "remotePath", kind: kString, required: true},
	}}
	// CopyFile's triggers tag says `providers:"replaceOnDelete"` (sic), so it has no replaceOnChanges;
	// CopyFile has no Update either, so every change replaces it anyway.
	copyFileInputs = &objectSchema{goType: "remote.CopyFileInputs", fields: []field{
		connectionField,
		{name: "triggers", kind: kAnyList},
		{name: "localPath", kind: kString, required: true},
		{name: "remotePath", kind: kString, required: true},
	}}
)

// inputSchemas maps each resource type and function token to its inputs.
var inputSchemas = map[string]*objectSchema{
	tLocalCommand:  localCommandInputs,
	tLocalRun:      localRunInputs,
	tRemoteCommand: remoteCommandInputs,
	tCopyToRemote:  copyToRemoteInputs,
	tCopyFile:      copyFileInputs,
}

// checkInputs is infer's default Check: with failures, the inputs come back as given (secrets
// marked); otherwise decoded, defaulted, re-encoded and secrets marked.
func checkInputs(s *objectSchema, news resource.PropertyMap) (resource.PropertyMap, []plugin.CheckFailure) {
	normalized, failures := s.check(news, true)
	if len(failures) == 0 {
		return normalized, nil
	}
	asGiven, _ := s.check(news, false)
	return asGiven, failures
}

// check walks m along the schema. With normalize it drops nulls, applies defaults and truncates
// integers, as a decode/encode round trip through upstream's struct does; in either mode it marks
// the provider:"secret" fields secret (infer's applySecrets).
func (s *objectSchema) check(m resource.PropertyMap, normalize bool) (resource.PropertyMap, []plugin.CheckFailure) {
	out := resource.PropertyMap{}
	var failures []plugin.CheckFailure
	fail := func(f, reason string) {
		failures = append(failures, plugin.CheckFailure{Property: resource.PropertyKey(f), Reason: reason})
	}
	for _, f := range s.fields {
		key := resource.PropertyKey(f.name)
		v, present := m[key]
		if !present || isNullValue(v) {
			if present && !normalize {
				out[key] = v
			}
			switch {
			case f.required:
				fail(f.name, fmt.Sprintf("Missing required field '%s' on '%s'", f.name, s.goType))
			case f.def != nil && normalize:
				out[key] = resource.NewPropertyValue(f.def)
			}
			continue
		}
		inner, wasSecret := peelSecret(v)
		if inner.ContainsUnknowns() {
			// infer keeps unknown values as they are (they decode to zero values).
			out[key] = markSecret(v, f.secret)
			continue
		}
		checked, reason := f.checkValue(inner, s, normalize)
		if reason != "" {
			fail(f.name, reason)
			checked = inner
		}
		if wasSecret {
			checked = resource.MakeSecret(checked)
		}
		out[key] = markSecret(checked, f.secret)
	}
	var unknownKeys []string
	for k := range m {
		if _, ok := s.field(string(k)); !ok {
			unknownKeys = append(unknownKeys, string(k))
			out[k] = m[k]
		}
	}
	sort.Strings(unknownKeys)
	for _, k := range unknownKeys {
		fail(k, fmt.Sprintf("Unrecognized field '%s' on '%s'", k, s.goType))
	}
	return out, failures
}

// checkValue checks one present, known value (secret marker removed) against the field's type and
// returns it (normalized) or the mapper's reason for rejecting it.
func (f field) checkValue(v resource.PropertyValue, parent *objectSchema, normalize bool) (resource.PropertyValue, string) {
	wrongType := func(key, expect string, got resource.PropertyValue) string {
		return fmt.Sprintf("Field '%s' on '%s' must be a '%s'; got '%s' instead", key, parent.goType, expect, goTypeOf(got))
	}
	switch f.kind {
	case kString, kNumber, kBool:
		if !scalarFits(f.kind, v) {
			return v, wrongType(f.name, f.expectedGoType(), v)
		}
	case kInt:
		if !v.IsNumber() {
			return v, wrongType(f.name, "int", v)
		}
		if normalize {
			return resource.NewNumberProperty(float64(int(v.NumberValue()))), ""
		}
	case kStringList:
		if !v.IsArray() {
			return v, wrongType(f.name, "[]string", v)
		}
		for i, e := range v.ArrayValue() {
			if e, _ := peelSecret(e); !e.ContainsUnknowns() && !e.IsString() {
				return v, wrongType(fmt.Sprintf("%s[%d]", f.name, i), "string", e)
			}
		}
	case kStringMap:
		if !v.IsObject() {
			return v, wrongType(f.name, "map[string]string", v)
		}
		obj := v.ObjectValue()
		for _, k := range obj.StableKeys() {
			if e, _ := peelSecret(obj[k]); !e.ContainsUnknowns() && !e.IsString() {
				return v, wrongType(fmt.Sprintf("%s[%s] value", f.name, k), "string", e)
			}
		}
	case kAnyList:
		if !v.IsArray() {
			return v, wrongType(f.name, "[]interface {}", v)
		}
	case kObject:
		if !v.IsObject() {
			return v, wrongType(f.name, f.object.goType, v)
		}
		checked, failures := f.object.check(v.ObjectValue(), normalize)
		if len(failures) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "An error occurred decoding '%s.%s': %d failures decoding:",
				parent.shortName(), f.name, len(failures))
			for _, nested := range failures {
				fmt.Fprintf(&b, "\n\t%s: %s", nested.Property, nested.Reason)
			}
			return v, b.String()
		}
		return resource.NewObjectProperty(checked), ""
	}
	return v, ""
}

func (f field) expectedGoType() string {
	if f.goType != "" {
		return f.goType
	}
	return map[kind]string{kString: "string", kNumber: "float64", kBool: "bool"}[f.kind]
}

func scalarFits(k kind, v resource.PropertyValue) bool {
	switch k {
	case kString:
		return v.IsString()
	case kNumber:
		return v.IsNumber()
	default:
		return v.IsBool()
	}
}

// goTypeOf names the Go type the mapper sees for v (PropertyValue.Mappable).
func goTypeOf(v resource.PropertyValue) string {
	switch {
	case v.IsString():
		return "string"
	case v.IsNumber():
		return "float64"
	case v.IsBool():
		return "bool"
	case v.IsArray():
		return "[]interface {}"
	default:
		return "map[string]interface {}"
	}
}

func isNullValue(v resource.PropertyValue) bool {
	inner, _ := peelSecret(v)
	return inner.IsNull()
}

// peelSecret removes secret markers (and known output wrappers) around v.
func peelSecret(v resource.PropertyValue) (resource.PropertyValue, bool) {
	secret := false
	for {
		switch {
		case v.IsSecret():
			secret = true
			v = v.SecretValue().Element
		case v.IsOutput() && v.OutputValue().Known:
			secret = secret || v.OutputValue().Secret
			v = v.OutputValue().Element
		default:
			return v, secret
		}
	}
}

func markSecret(v resource.PropertyValue, secret bool) resource.PropertyValue {
	if !secret || v.IsSecret() {
		return v
	}
	return resource.MakeSecret(v)
}

// checkCopySource is the extra check of upstream's CopyToRemote.Check (remote/copyController.go):
// the source must be a path or text asset, or a path archive. An unknown source decodes to
// neither, so upstream rejects it as well.
func checkCopySource(source resource.PropertyValue) []plugin.CheckFailure {
	v, _ := peelSecret(source)
	failure := func(p, reason string) []plugin.CheckFailure {
		return []plugin.CheckFailure{{Property: resource.PropertyKey(p), Reason: reason}}
	}
	switch {
	case v.IsAsset():
		if a := v.AssetValue(); !a.IsPath() && !a.IsText() {
			return failure("asset", "asset must be a path-based file asset or a text asset")
		}
	case v.IsArchive():
		if !v.ArchiveValue().IsPath() {
			return failure("archive", "archive must be a path to a file or directory")
		}
	default:
		return failure("asset", "either asset or archive must be set")
	}
	return nil
}
