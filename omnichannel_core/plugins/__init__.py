"""The plugin system: discovery and loading (`loading`), coroutine hooks under pluggy
(`bridge`), per-channel dispatch (`dispatch`, `channels`), and what plugins contribute
through the module hooks, collected and checked at start-up (`registry`, `context`)."""
