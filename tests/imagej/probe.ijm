// Print what ImageJ sees of one file, one fact per line, for tests/test_imagej.py.
open(getArgument());
getDimensions(width, height, channels, slices, frames);
print("dims=" + width + "," + height + "," + channels + "," + slices + "," + frames);
print("bitdepth=" + bitDepth());
getMinAndMax(low, high);
print("display=" + d2s(low, -9) + "," + d2s(high, -9));
getPixelSize(unit, pw, ph, pd);
print("pixelsize=" + unit + "," + d2s(pw, -9) + "," + d2s(ph, -9));
for (s = 1; s <= nSlices; s++) {
    setSlice(s);
    print("label" + s + "=" + getMetadata("Label"));
    points = newArray(0, 0, width - 1, height - 1, floor(width / 2), floor(height / 2));
    for (k = 0; k < points.length; k += 2) {
        v = getPixel(points[k], points[k + 1]);
        print("pixel" + s + "," + points[k] + "," + points[k + 1] + "=" + d2s(v, -9) + "," + d2s(calibrate(v), -12));
    }
}
info = getImageInfo();
print("info_has_provenance=" + (indexOf(info, "\"formula\"") >= 0));
