package main

import "github.com/pulumi/pulumi/sdk/v3/go/common/resource"

// The resource schemas below restate, attribute by attribute, the Terraform schemas of
// hashicorp/terraform-provider-random (internal/provider/resource_*.go at the commit
// pulumi-random v4.21.1 pins) under the Pulumi names the bridge gives them. Planning, diffing
// and the recorded state are all driven from these tables, as the bridge drives them from the
// Terraform schema.

type kind int

const (
	kString kind = iota
	kBool
	kInt
	kStringMap
	kStringList
)

// replaceRule says when a change of the attribute forces a new resource (the attribute's plan modifiers).
type replaceRule int

const (
	noReplace                replaceRule = iota // computed attributes (UseStateForUnknown)
	replaceOnChange                             // RequiresReplace
	replaceKeepers                              // mapplanmodifiers.RequiresReplaceIfValuesNotNull
	replaceUnlessEmptyToNull                    // stringplanmodifiers.RequiresReplaceUnlessEmptyStringToNull
)

type attr struct {
	name     string // Pulumi property name
	tf       string // Terraform attribute name
	kind     kind
	input    bool // Required or Optional
	required bool
	computed bool                    // Computed (alone, or with Optional)
	def      *resource.PropertyValue // static Default of an Optional+Computed attribute
	// numberNumeric marks number/numeric, planned by NumberNumericAttributePlanModifier.
	numberNumeric bool
	sensitive     bool
	replace       replaceRule
}

type resourceSchema struct {
	token         string
	schemaVersion int // written to __meta by the bridge when not 0
	attrs         []attr
	// id picks the Pulumi ID out of the outputs (the TF "id" attribute, or ComputeID).
	id func(outs resource.PropertyMap) string
}

func boolDef(b bool) *resource.PropertyValue { v := resource.NewBoolProperty(b); return &v }
func intDef(n int) *resource.PropertyValue   { v := resource.NewNumberProperty(float64(n)); return &v }
func strDef(s string) *resource.PropertyValue {
	v := resource.NewStringProperty(s)
	return &v
}

var (
	keepersAttr    = attr{name: "keepers", tf: "keepers", kind: kStringMap, input: true, replace: replaceKeepers}
	idAttr         = attr{name: "id", tf: "id", kind: kString, computed: true}
	computedString = func(name, tf string) attr { return attr{name: name, tf: tf, kind: kString, computed: true} }
	requiredInt    = func(name, tf string) attr {
		return attr{name: name, tf: tf, kind: kInt, input: true, required: true, replace: replaceOnChange}
	}
	optionalString = func(name, tf string) attr {
		return attr{name: name, tf: tf, kind: kString, input: true, replace: replaceOnChange}
	}
)

func idProperty(outs resource.PropertyMap) string { return stringOf(outs["id"]) }

// stringAttrs are the attributes random_password and random_string share (schema V3 of
// resource_password.go / resource_string.go).
func stringAttrs(sensitiveResult bool) []attr {
	defaultTrue := func(name string) attr {
		return attr{name: name, tf: name, kind: kBool, input: true, computed: true, def: boolDef(true), replace: replaceOnChange}
	}
	minimum := func(name, tf string) attr {
		return attr{name: name, tf: tf, kind: kInt, input: true, computed: true, def: intDef(0), replace: replaceOnChange}
	}
	numberNumeric := func(name string) attr {
		return attr{name: name, tf: name, kind: kBool, input: true, computed: true, numberNumeric: true, replace: replaceOnChange}
	}
	return []attr{
		keepersAttr,
		requiredInt("length", "length"),
		defaultTrue("special"),
		defaultTrue("upper"),
		defaultTrue("lower"),
		numberNumeric("number"),
		numberNumeric("numeric"),
		minimum("minNumeric", "min_numeric"),
		minimum("minUpper", "min_upper"),
		minimum("minLower", "min_lower"),
		minimum("minSpecial", "min_special"),
		{name: "overrideSpecial", tf: "override_special", kind: kString, input: true, replace: replaceUnlessEmptyToNull},
		{name: "result", tf: "result", kind: kString, computed: true, sensitive: sensitiveResult},
		idAttr,
	}
}

var schemas = map[string]*resourceSchema{}

func register(s *resourceSchema) { schemas[s.token] = s }

func init() {
	password := &resourceSchema{token: tPassword, schemaVersion: 3, attrs: stringAttrs(true), id: idProperty}
	password.attrs = append(password.attrs,
		attr{name: "bcryptHash", tf: "bcrypt_hash", kind: kString, computed: true, sensitive: true})
	register(password)
	// resource_string.go declares Version: 2 for its current schema (stringSchemaV3).
	register(&resourceSchema{token: tString, schemaVersion: 2, attrs: stringAttrs(false), id: idProperty})

	register(&resourceSchema{token: tID, id: idProperty, attrs: []attr{
		keepersAttr,
		requiredInt("byteLength", "byte_length"),
		optionalString("prefix", "prefix"),
		computedString("b64Url", "b64_url"),
		computedString("b64Std", "b64_std"),
		computedString("hex", "hex"),
		computedString("dec", "dec"),
		idAttr,
	}})
	register(&resourceSchema{token: tInteger, id: idProperty, attrs: []attr{
		keepersAttr,
		requiredInt("min", "min"),
		requiredInt("max", "max"),
		optionalString("seed", "seed"),
		{name: "result", tf: "result", kind: kInt, computed: true},
		idAttr,
	}})
	for _, t := range []string{tUUID, tUUID4, tUUID7} {
		register(&resourceSchema{token: t, id: idProperty, attrs: []attr{
			keepersAttr, computedString("result", "result"), idAttr,
		}})
	}
	// random_bytes has no "id"; pulumi-random's computeRandomBytesID uses base64. Its keepers use the
	// framework's plain mapplanmodifier.RequiresReplace.
	register(&resourceSchema{token: tBytes, id: func(o resource.PropertyMap) string { return stringOf(o["base64"]) }, attrs: []attr{
		{name: "keepers", tf: "keepers", kind: kStringMap, input: true, replace: replaceOnChange},
		{name: "length", tf: "length", kind: kInt, input: true, required: true, replace: replaceOnChange},
		{name: "base64", tf: "base64", kind: kString, computed: true, sensitive: true},
		{name: "hex", tf: "hex", kind: kString, computed: true, sensitive: true},
	}})
	register(&resourceSchema{token: tShuffle, id: idProperty, attrs: []attr{
		keepersAttr,
		optionalString("seed", "seed"),
		{name: "inputs", tf: "input", kind: kStringList, input: true, required: true, replace: replaceOnChange},
		{name: "resultCount", tf: "result_count", kind: kInt, input: true, replace: replaceOnChange},
		{name: "results", tf: "result", kind: kStringList, computed: true},
		idAttr,
	}})
	register(&resourceSchema{token: tPet, id: idProperty, attrs: []attr{
		keepersAttr,
		{name: "length", tf: "length", kind: kInt, input: true, computed: true, def: intDef(2), replace: replaceOnChange},
		optionalString("prefix", "prefix"),
		{name: "separator", tf: "separator", kind: kString, input: true, computed: true, def: strDef("-"), replace: replaceOnChange},
		idAttr,
	}})
}
