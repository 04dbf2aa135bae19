"""The one tool registry: every external side effect goes through `ToolBox.call`."""
