package main

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

// validate runs the Terraform schema validators that these resources declare. The bridge turns
// each attribute error of ValidateResourceConfig into a check failure whose reason is
// "<summary>. <detail>. Examine values at '<resource name>.<property>'." and leaves Property
// empty (pkg/pf/tfbridge/detect_check_failures.go, pkg/tfbridge/check_failures.go NewCheckFailure).
func validate(s *resourceSchema, name string, news resource.PropertyMap) []plugin.CheckFailure {
	var fails []plugin.CheckFailure
	fail := func(prop, summary, detail string) {
		fails = append(fails, plugin.CheckFailure{
			Reason: fmt.Sprintf("%s. %s. Examine values at '%s.%s'.", summary, detail, name, prop),
		})
	}
	// int64validator.AtLeast / AtLeastSumOf (terraform-plugin-framework-validators), rendered by
	// validatordiag.InvalidAttributeValueDiagnostic.
	atLeast := func(prop string, min int64) {
		v := plain(news, prop)
		if v.IsNumber() && int64(v.NumberValue()) < min {
			fail(prop, "Invalid Attribute Value", fmt.Sprintf("Value must be at least %d, got: %d", min, int64(v.NumberValue())))
		}
	}
	switch s.token {
	case tPassword, tString:
		atLeast("length", 1)
		if length := plain(news, "length"); length.IsNumber() {
			var sum int64
			known := true
			for _, k := range []string{"minUpper", "minLower", "minNumeric", "minSpecial"} {
				v := plain(news, k)
				known = known && !isUnknown(v)
				sum += num(v)
			}
			if known && int64(length.NumberValue()) < sum {
				fail("length", "Invalid Attribute Value", fmt.Sprintf(
					"Value must be at least sum of min_upper + min_lower + min_numeric + min_special, got: %d",
					int64(length.NumberValue())))
			}
		}
		// validators.AtLeastOneOfTrue on number and numeric: a configured false needs one of
		// special, upper, lower to be true, unset or unknown.
		for _, k := range []string{"number", "numeric"} {
			v := plain(news, k)
			if !v.IsBool() || v.BoolValue() {
				continue
			}
			ok := false
			for _, other := range []string{"special", "upper", "lower"} {
				o := plain(news, other)
				ok = ok || !o.IsBool() || o.BoolValue()
			}
			if !ok {
				fail(k, "Invalid Attribute Combination", fmt.Sprintf(
					"At least one attribute out of [special,upper,lower,%s] must be specified as true", k))
			}
		}
	case tBytes:
		atLeast("length", 1)
	}
	return fails
}
