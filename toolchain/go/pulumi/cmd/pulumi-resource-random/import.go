package main

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// importState is each resource's ImportState in terraform-provider-random: the state it builds
// from the ID given to `pulumi import`. random_shuffle and random_pet do not support import.
func importState(t, id string) (resource.PropertyMap, error) {
	null := resource.NewNullProperty()
	str := resource.NewStringProperty
	number := func(n int64) resource.PropertyValue { return resource.NewNumberProperty(float64(n)) }
	switch t {
	case tPassword, tString:
		st := resource.PropertyMap{
			"id": str(id), "result": str(id), "length": number(int64(len(id))),
			"special": resource.NewBoolProperty(true), "upper": resource.NewBoolProperty(true),
			"lower": resource.NewBoolProperty(true), "number": resource.NewBoolProperty(true),
			"numeric":    resource.NewBoolProperty(true),
			"minSpecial": number(0), "minUpper": number(0), "minLower": number(0), "minNumeric": number(0),
			"overrideSpecial": null, "keepers": null,
		}
		if t == tPassword {
			st["id"] = str("none")
			h, err := bcryptHash(id)
			if err != nil {
				return nil, err
			}
			st["bcryptHash"] = str(h)
		}
		return st, nil
	case tInteger:
		return importInteger(id)
	case tID:
		prefix, encoded := "", id
		if i := strings.LastIndex(id, ","); i >= 0 {
			prefix, encoded = id[:i], id[i+1:]
		}
		b, err := base64.RawURLEncoding.DecodeString(encoded)
		if err != nil {
			return nil, diagError("Import Random ID Error", "While attempting to import a random id there was a "+
				"decoding error.\n\n+"+retryMsg+"Original Error: "+err.Error())
		}
		b64url, b64std, hexs, dec := idEncodings(b, prefix)
		st := resource.PropertyMap{
			"id": str(encoded), "byteLength": number(int64(len(b))), "keepers": null, "prefix": null,
			"b64Url": str(b64url), "b64Std": str(b64std), "hex": str(hexs), "dec": str(dec),
		}
		if prefix != "" {
			st["prefix"] = str(prefix)
		}
		return st, nil
	case tUUID:
		b, err := parseHashicorpUUID(id)
		if err != nil {
			return nil, diagError("Import Random UUID Error", "There was an error during the parsing of the UUID.\n\n"+
				retryMsg+"Original Error: "+err.Error())
		}
		u := formatUUID(b)
		return resource.PropertyMap{"id": str(u), "result": str(u), "keepers": null}, nil
	case tUUID4, tUUID7:
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, diagError("Import Random UUID Error", "There was an error during the parsing of the UUID.\n\n"+
				retryMsg+"Original Error: "+err.Error())
		}
		return resource.PropertyMap{"id": str(u.String()), "result": str(u.String()), "keepers": null}, nil
	case tBytes:
		b, err := base64.StdEncoding.DecodeString(id)
		if err != nil {
			return nil, diagError("Import Random bytes Error", "There was an error during the parsing of the base64 string.\n\n"+
				retryMsg+"Original Error: "+err.Error())
		}
		_, _, hexs, _ := idEncodings(b, "")
		return resource.PropertyMap{"length": number(int64(len(b))), "base64": str(id), "hex": str(hexs), "keepers": null}, nil
	}
	// terraform-plugin-framework's answer for a resource without ImportState.
	return nil, diagError("Resource Import Not Implemented", "This resource does not support import. "+
		"Please contact the provider developer for additional information.")
}

// importInteger parses "result,min,max[,seed]" as resource_integer.go's ImportState.
func importInteger(id string) (resource.PropertyMap, error) {
	const summary = "Import Random Integer Error"
	parts := strings.Split(id, ",")
	if len(parts) != 3 && len(parts) != 4 {
		return nil, diagError(summary, "Invalid import usage: expecting {result},{min},{max} or {result},{min},{max},{seed}")
	}
	var vals [3]int64
	for i, what := range []string{"The value", "The min value", "The max value"} {
		v, err := strconv.ParseInt(parts[i], 10, 64)
		if err != nil {
			return nil, diagError(summary, fmt.Sprintf("%s supplied could not be parsed as an integer.\n\nOriginal Error: %s", what, err))
		}
		vals[i] = v
	}
	st := resource.PropertyMap{
		"id": resource.NewStringProperty(parts[0]), "keepers": resource.NewNullProperty(),
		"result": resource.NewNumberProperty(float64(vals[0])),
		"min":    resource.NewNumberProperty(float64(vals[1])), "max": resource.NewNumberProperty(float64(vals[2])),
		"seed": resource.NewNullProperty(),
	}
	if len(parts) == 4 {
		st["seed"] = resource.NewStringProperty(parts[3])
	}
	return st, nil
}
