package components

// Version is the program's release (semantic versioning; CHANGELOG.md says what each one
// changed). It is a stack output, and part of every color's release content (colorpin.go): a
// release of the program reaches the idle color, and only it, because this changes.
const Version = "1.2.0"
