// Command argocd-health runs an Argo CD resource health script the way Argo CD's controller
// does (util/lua in argoproj/argo-cd): gopher-lua, Lua 5.1 semantics, without the standard
// libraries except package, base and table, a one-second limit, the resource as the global
// `obj`, and the returned table read as {status, message} with the status checked against
// Argo CD's health codes.
//
// Input on stdin: one JSON object per line, {"script": "...", "obj": {...}}.
// Output on stdout: one JSON object per line, {"status": ..., "message": ...} or {"error": ...}.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type request struct {
	Script string         `json:"script"`
	Obj    map[string]any `json:"obj"`
}

type answer struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// The health codes Argo CD accepts from a script; any other status is Unknown there.
var healthCodes = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		array := state.CreateTable(len(v), 0)
		for _, item := range v {
			array.Append(toLua(state, item))
		}
		return array
	case map[string]any:
		table := state.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(state, item))
		}
		return table
	}
	return lua.LNil
}

func field(table *lua.LTable, name string) (string, error) {
	switch v := table.RawGetString(name).(type) {
	case lua.LString:
		return string(v), nil
	case *lua.LNilType:
		return "", nil
	default:
		return "", fmt.Errorf("%s is a %s, not a string", name, v.Type())
	}
}

func health(req request) answer {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		err := state.CallByParam(lua.P{Fn: state.NewFunction(lib.open), Protect: true}, lua.LString(lib.name))
		if err != nil {
			return answer{Error: err.Error()}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, req.Obj))
	if err := state.DoString(req.Script); err != nil {
		return answer{Error: err.Error()}
	}
	returned, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		return answer{Error: fmt.Sprintf("expect table output from Lua script, not %s", state.Get(-1).Type())}
	}
	status, err := field(returned, "status")
	if err != nil {
		return answer{Error: err.Error()}
	}
	message, err := field(returned, "message")
	if err != nil {
		return answer{Error: err.Error()}
	}
	if !healthCodes[status] {
		return answer{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return answer{Status: status, Message: message}
}

func main() {
	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for lines.Scan() {
		var req request
		if err := json.Unmarshal(lines.Bytes(), &req); err != nil {
			_ = out.Encode(answer{Error: "bad request: " + err.Error()})
			continue
		}
		_ = out.Encode(health(req))
	}
	if err := lines.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
