package config

// ReleaseProblems checks a frontend color's release as the program reads it back from the
// stack's own frontendReleases output (key names the color in it): the same rules as the
// color's config keys (blueImage/blueVersion), an image with a pinned tag and a label-safe
// version, so an edited output can never deploy what config would refuse.
func ReleaseProblems(key, image, version string) []string {
	var p problemList
	p.image(key+" image", image)
	p.oneOf(key+" version", version, versionText.MatchString(version), "a label-safe version such as 1.2.0")
	return p
}
