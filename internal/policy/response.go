package policy

// ResponseKind says what one response policy does.
type ResponseKind uint8

const (
	SetResponseHeader    ResponseKind = iota // replace the upstream's values
	AddResponseHeader                        // add beside them
	RemoveResponseHeader                     // drop them
)

var responseKindNames = [...]string{SetResponseHeader: "setHeader", AddResponseHeader: "addHeader", RemoveResponseHeader: "removeHeader"}

func (k ResponseKind) String() string { return responseKindNames[k] }

// ResponseOp is one compiled response policy.
type ResponseOp struct {
	Kind  ResponseKind
	Name  string // lower case
	Value string
}

// ResponseHeader is a header for the client's response: Append adds it
// beside the upstream's values, otherwise it replaces them.
type ResponseHeader struct {
	Name, Value string
	Append      bool
}
