"""The checks: each turns a conversation or generated text into evidence per forget entry
(`evidence.Evidence`), and `decide` turns a stage's evidence into one verdict by the entries' policies.
`stages` lists the checks of the input and the output stage."""
