package exec

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"

	"github.com/nikolalohinski/gonja/v2/tokens"
)

// NoneType is the type of None, Python's null value. Unlike an undefined
// name, None is defined, is not replaced by the default filter and prints
// as "None".
type NoneType struct{}

// String returns "None".
func (*NoneType) String() string { return "None" }

// None is Python's None. Its Value is nil for IsNil (it is a nil pointer),
// and IsNone tells it from an undefined value.
var None *NoneType

var noneType = reflect.TypeFor[*NoneType]()

// IsNone reports whether the value is None (not merely undefined).
func (v *Value) IsNone() bool { return v.Val.IsValid() && v.Val.Type() == noneType }

// IsUndefined reports whether the value is undefined: nil and not None.
func (v *Value) IsUndefined() bool { return v.IsNil() && !v.IsNone() }

// Tuple is a Python tuple: a list that prints in parentheses.
type Tuple []*Value

var tupleType = reflect.TypeFor[Tuple]()

// IsTuple reports whether the value is a tuple.
func (v *Value) IsTuple() bool {
	r := v.getResolvedValue()
	return r.IsValid() && r.Type() == tupleType
}

// MaxIntBits bounds the size of a template's integers: Python's have no
// bound, but a template must not exhaust memory with 9 ** 9 ** 9.
const MaxIntBits = 1 << 16

// MaxRepeatSize bounds the string or list that * repeats.
const MaxRepeatSize = 16 << 20

var bigIntType = reflect.TypeFor[*big.Int]()

// IsBigInt reports whether the value is an integer beyond 64 bits.
func (v *Value) IsBigInt() bool { return v.Val.IsValid() && v.Val.Type() == bigIntType }

// bigInt returns an integer value (int or big) as a big.Int.
func (v *Value) bigInt() (*big.Int, bool) {
	switch {
	case v.IsBigInt():
		return v.Val.Interface().(*big.Int), true
	case v.IsInteger():
		r := v.getResolvedValue()
		switch r.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			return new(big.Int).SetUint64(r.Uint()), true
		}
		return big.NewInt(r.Int()), true
	}
	return nil, false
}

// isPyInt reports whether the value is an integer of any size.
func (v *Value) isPyInt() bool { return v.IsInteger() || v.IsBigInt() }

// isPyNumber reports whether the value is an integer or a float.
func (v *Value) isPyNumber() bool { return v.IsNumber() || v.IsBigInt() }

// pyFloat is the value as a float, big integers included.
func (v *Value) pyFloat() float64 {
	if v.IsBigInt() {
		f, _ := new(big.Float).SetInt(v.Val.Interface().(*big.Int)).Float64()
		return f
	}
	return v.Float()
}

// IntValue returns an integer as a Value: an int when it fits, else a
// big.Int (an error beyond MaxIntBits).
func IntValue(b *big.Int) *Value {
	if b.IsInt64() && int64(int(b.Int64())) == b.Int64() {
		return AsValue(int(b.Int64()))
	}
	if b.BitLen() > MaxIntBits {
		return AsValue(fmt.Errorf("integer too large: more than %d bits", MaxIntBits))
	}
	return AsValue(new(big.Int).Set(b))
}

var (
	errZeroDivision = errors.New("ZeroDivisionError: division by zero")
	errIntZero      = errors.New("ZeroDivisionError: integer division or modulo by zero")
	errFloatModulo  = errors.New("ZeroDivisionError: float modulo")
)

// pyBinary evaluates the operators whose Python semantics differ from
// gonja's: string formatting with %, repetition with *, and arithmetic and
// comparison of integers of any size and of floats (floor division,
// modulo and powers as Python computes them, ZeroDivisionError). It
// reports false for what it leaves to the generic code.
func pyBinary(op tokens.Type, left, right *Value) (*Value, bool) {
	if _, ok := arithmetic[op]; ok && !(op == tokens.Modulo && left.IsString()) {
		// bool is a subclass of int: True + 1 is 2, 'ab' * True is 'ab'.
		left, right = boolAsInt(left), boolAsInt(right)
	}
	switch {
	case op == tokens.Addition && left.IsTuple() && right.IsTuple():
		out := make(Tuple, 0, left.Len()+right.Len())
		for _, seq := range []*Value{left, right} {
			for i := range seq.Len() {
				out = append(out, seq.Index(i))
			}
		}
		return AsValue(out), true
	case op == tokens.Modulo && left.IsString():
		out, err := PercentFormat(left.String(), right)
		if err != nil {
			return AsValue(err), true
		}
		return AsValue(out), true
	case op == tokens.Multiply && (left.IsString() || left.IsList()) && right.isPyInt():
		return repeat(left, right), true
	case op == tokens.Multiply && (right.IsString() || right.IsList()) && left.isPyInt():
		return repeat(right, left), true
	case left.isPyInt() && right.isPyInt():
		a, _ := left.bigInt()
		b, _ := right.bigInt()
		return intBinary(op, a, b)
	case left.isPyNumber() && right.isPyNumber():
		return floatBinary(op, left.pyFloat(), right.pyFloat())
	}
	if err := operandError(op, left, right); err != nil {
		return AsValue(err), true
	}
	return nil, false
}

// boolAsInt is a boolean as the integer Python's arithmetic takes it for.
func boolAsInt(v *Value) *Value {
	if !v.IsBool() {
		return v
	}
	if v.IsTrue() {
		return AsValue(1)
	}
	return AsValue(0)
}

// arithmetic names the arithmetic operators.
var arithmetic = map[tokens.Type]string{
	tokens.Addition: "+", tokens.Subtraction: "-", tokens.Multiply: "*", tokens.Division: "/",
	tokens.FloorDivision: "//", tokens.Modulo: "%", tokens.Power: "**",
}

// operandError is the error Python raises for an arithmetic operator on
// operands it does not apply to (Jinja2's Undefined raises UndefinedError,
// 'a' - 1 and [1] + 'a' raise TypeError), or nil when the operator applies.
// Values of types that have no Python name are left to the generic code.
func operandError(op tokens.Type, left, right *Value) error {
	sym, ok := arithmetic[op]
	if !ok {
		return nil
	}
	switch {
	case left.IsUndefined():
		return fmt.Errorf("UndefinedError: the left operand of %s is undefined", sym)
	case right.IsUndefined():
		return fmt.Errorf("UndefinedError: the right operand of %s is undefined", sym)
	}
	num := func(v *Value) bool { return v.isPyNumber() }
	switch {
	case typeName(left) == "object" || typeName(right) == "object":
		return nil
	case num(left) && num(right):
		return nil
	case op == tokens.Addition && left.IsString() && right.IsString():
		return nil
	case op == tokens.Addition && left.IsList() && right.IsList() && left.IsTuple() == right.IsTuple():
		return nil
	case op == tokens.Addition && (left.IsString() || left.IsList()):
		return fmt.Errorf(`TypeError: can only concatenate %s (not "%s") to %s`, typeName(left), typeName(right), typeName(left))
	}
	return fmt.Errorf("TypeError: unsupported operand type(s) for %s: '%s' and '%s'", sym, typeName(left), typeName(right))
}

// repeat is seq * n for a string or a list.
func repeat(seq, times *Value) *Value {
	n := 0
	if b, _ := times.bigInt(); b.Sign() > 0 {
		if !b.IsInt64() || b.Int64() > MaxRepeatSize {
			return AsValue(fmt.Errorf("repetition larger than %d items", MaxRepeatSize))
		}
		n = int(b.Int64())
	}
	if seq.Len() > 0 && n > MaxRepeatSize/seq.Len() {
		return AsValue(fmt.Errorf("repetition larger than %d items", MaxRepeatSize))
	}
	if seq.IsString() {
		return AsValue(strings.Repeat(seq.String(), n))
	}
	out := make([]any, 0, seq.Len()*n)
	for range n {
		for i := range seq.Len() {
			out = append(out, seq.Index(i))
		}
	}
	return AsValue(out)
}

// intBinary is a Python operator on two integers.
func intBinary(op tokens.Type, a, b *big.Int) (*Value, bool) {
	switch op {
	case tokens.Addition:
		return IntValue(new(big.Int).Add(a, b)), true
	case tokens.Subtraction:
		return IntValue(new(big.Int).Sub(a, b)), true
	case tokens.Multiply:
		if a.BitLen()+b.BitLen() > MaxIntBits+1 {
			return AsValue(fmt.Errorf("integer too large: more than %d bits", MaxIntBits)), true
		}
		return IntValue(new(big.Int).Mul(a, b)), true
	case tokens.Division:
		if b.Sign() == 0 {
			return AsValue(errZeroDivision), true
		}
		q, _ := new(big.Rat).SetFrac(a, b).Float64()
		return AsValue(q), true
	case tokens.FloorDivision, tokens.Modulo:
		if b.Sign() == 0 {
			return AsValue(errIntZero), true
		}
		// DivMod's remainder is never negative; Python rounds the quotient
		// toward negative infinity, so the remainder has the sign of the
		// divisor.
		q, m := new(big.Int).DivMod(a, b, new(big.Int))
		if m.Sign() != 0 && b.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
			m.Add(m, b)
		}
		if op == tokens.FloorDivision {
			return IntValue(q), true
		}
		return IntValue(m), true
	case tokens.Power:
		if b.Sign() < 0 {
			return floatBinary(op, bigFloat(a), bigFloat(b))
		}
		if a.BitLen() > 1 && (!b.IsInt64() || b.Int64() > MaxIntBits || int64(a.BitLen()-1)*b.Int64() > MaxIntBits) {
			return AsValue(fmt.Errorf("integer too large: more than %d bits", MaxIntBits)), true
		}
		return IntValue(new(big.Int).Exp(a, b, nil)), true
	case tokens.LowerThan:
		return AsValue(a.Cmp(b) < 0), true
	case tokens.LowerThanOrEqual:
		return AsValue(a.Cmp(b) <= 0), true
	case tokens.GreaterThan:
		return AsValue(a.Cmp(b) > 0), true
	case tokens.GreaterThanOrEqual:
		return AsValue(a.Cmp(b) >= 0), true
	case tokens.Equals:
		return AsValue(a.Cmp(b) == 0), true
	case tokens.Ne:
		return AsValue(a.Cmp(b) != 0), true
	}
	return nil, false
}

func bigFloat(b *big.Int) float64 {
	f, _ := new(big.Float).SetInt(b).Float64()
	return f
}

// floatBinary is a Python operator on two numbers, one of them a float.
func floatBinary(op tokens.Type, a, b float64) (*Value, bool) {
	switch op {
	case tokens.Division:
		if b == 0 {
			return AsValue(errZeroDivision), true
		}
		return AsValue(a / b), true
	case tokens.FloorDivision:
		if b == 0 {
			return AsValue(errZeroDivision), true
		}
		return AsValue(math.Floor(a / b)), true
	case tokens.Modulo:
		if b == 0 {
			return AsValue(errFloatModulo), true
		}
		m := math.Mod(a, b)
		if m != 0 && (m < 0) != (b < 0) {
			m += b
		}
		return AsValue(m), true
	case tokens.Power:
		if a == 0 && b < 0 {
			return AsValue(errors.New("ZeroDivisionError: 0.0 cannot be raised to a negative power")), true
		}
		return AsValue(math.Pow(a, b)), true
	}
	return nil, false
}

// PercentFormat is Python's format % values (printf-style formatting):
// values is a tuple of the arguments, a mapping for %(name)s keys, or a
// single argument. It supports %s %r %a %d %i %u %x %X %o %f %F %e %E %g
// %G %c and %%, with flags (-+ 0#), width and precision.
func PercentFormat(format string, values *Value) (string, error) {
	var args []*Value
	var mapping *Value
	switch {
	case values.IsTuple():
		for i := range values.Len() {
			args = append(args, values.Index(i))
		}
	case values.IsDict() && strings.Contains(format, "%("):
		mapping = values
	default:
		args = []*Value{values}
	}
	return percentFormat(format, args, mapping)
}

// PercentFormatArgs is PercentFormat with the arguments given one by one.
func PercentFormatArgs(format string, args []*Value) (string, error) {
	return percentFormat(format, args, nil)
}

func percentFormat(format string, args []*Value, mapping *Value) (string, error) {
	var b strings.Builder
	next := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		j := i + 1
		var arg *Value
		if j < len(format) && format[j] == '(' {
			end := strings.IndexByte(format[j:], ')')
			if end < 0 {
				return "", errors.New("ValueError: incomplete format key")
			}
			if mapping == nil {
				return "", errors.New("TypeError: format requires a mapping")
			}
			key := format[j+1 : j+end]
			v, ok := mapping.GetItem(key)
			if !ok {
				return "", fmt.Errorf("KeyError: '%s'", key)
			}
			arg = v
			j += end + 1
		}
		flagsStart := j
		for j < len(format) && strings.IndexByte("-+ 0#", format[j]) >= 0 {
			j++
		}
		flags := format[flagsStart:j]
		for j < len(format) && (format[j] >= '0' && format[j] <= '9' || format[j] == '.') {
			j++
		}
		if j >= len(format) {
			return "", errors.New("ValueError: incomplete format")
		}
		spec, verb := format[i+1:j], format[j]
		if arg != nil {
			spec = format[flagsStart:j]
		}
		i = j
		if verb == '%' && arg == nil {
			b.WriteByte('%')
			continue
		}
		if arg == nil {
			if mapping != nil {
				return "", errors.New("TypeError: format requires a mapping")
			}
			if next >= len(args) {
				return "", errors.New("TypeError: not enough arguments for format string")
			}
			arg = args[next]
			next++
		}
		if err := formatOne(&b, spec, flags, verb, arg); err != nil {
			return "", err
		}
	}
	if mapping == nil && next < len(args) {
		return "", errors.New("TypeError: not all arguments converted during string formatting")
	}
	return b.String(), nil
}

// formatOne writes one conversion of PercentFormat.
func formatOne(b *strings.Builder, spec, flags string, verb byte, arg *Value) error {
	switch verb {
	case 's':
		fmt.Fprintf(b, "%"+spec+"s", arg.String())
	case 'r', 'a':
		fmt.Fprintf(b, "%"+spec+"s", Repr(arg))
	case 'd', 'i', 'u', 'x', 'X', 'o':
		n, err := formatInt(arg, verb)
		if err != nil {
			return err
		}
		if verb == 'd' || verb == 'i' || verb == 'u' {
			verb = 'd'
		}
		if verb == 'o' && strings.Contains(flags, "#") {
			// Python writes 0o10 where Go writes 010.
			spec = strings.Replace(spec, "#", "", 1)
			s := fmt.Sprintf("%o", new(big.Int).Abs(n))
			sign := ""
			if n.Sign() < 0 {
				sign = "-"
			}
			fmt.Fprintf(b, "%"+strings.TrimLeft(spec, "0")+"s", sign+"0o"+s)
			return nil
		}
		fmt.Fprintf(b, "%"+spec+string(verb), n)
	case 'f', 'F', 'e', 'E', 'g', 'G':
		if !arg.isPyNumber() {
			return fmt.Errorf("TypeError: must be real number, not %s", typeName(arg))
		}
		if !strings.Contains(spec, ".") {
			spec += ".6"
		}
		fmt.Fprintf(b, "%"+spec+string(verb), arg.pyFloat())
	case 'c':
		switch {
		case arg.IsString() && arg.Len() == 1:
			b.WriteString(arg.String())
		case arg.IsInteger():
			b.WriteRune(rune(arg.Integer()))
		default:
			return errors.New("TypeError: %c requires an int or a unicode character")
		}
	default:
		return fmt.Errorf("ValueError: unsupported format character '%c'", verb)
	}
	return nil
}

// formatInt is the integer a %d, %x or %o conversion formats.
func formatInt(arg *Value, verb byte) (*big.Int, error) {
	if n, ok := arg.bigInt(); ok {
		return n, nil
	}
	if arg.IsFloat() && (verb == 'd' || verb == 'i' || verb == 'u') {
		f := arg.Float()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, errors.New("OverflowError: cannot convert float infinity or NaN to integer")
		}
		n, _ := big.NewFloat(math.Trunc(f)).Int(nil)
		return n, nil
	}
	if arg.IsBool() {
		if arg.Bool() {
			return big.NewInt(1), nil
		}
		return big.NewInt(0), nil
	}
	if verb == 'd' || verb == 'i' || verb == 'u' {
		return nil, fmt.Errorf("TypeError: %%%c format: a real number is required, not %s", verb, typeName(arg))
	}
	return nil, fmt.Errorf("TypeError: %%%c format: an integer is required, not %s", verb, typeName(arg))
}

// typeName is the Python name of a value's type, for errors.
func typeName(v *Value) string {
	switch {
	case v.IsNone():
		return "NoneType"
	case v.IsString():
		return "str"
	case v.IsBool():
		return "bool"
	case v.isPyInt():
		return "int"
	case v.IsFloat():
		return "float"
	case v.IsTuple():
		return "tuple"
	case v.IsList():
		return "list"
	case v.IsDict():
		return "dict"
	}
	return "object"
}

// Repr is Python's repr of a value: strings quoted, other values as str.
func Repr(v *Value) string {
	if v.IsString() {
		return pyQuote(v.String())
	}
	return v.String()
}

// pyQuote quotes a string as Python's repr does.
func pyQuote(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(q):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}
