package org.tinysam.app

import android.app.Activity
import android.content.Intent
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Color
import android.graphics.ColorSpace
import android.media.ExifInterface
import android.net.Uri
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.LinearLayout
import android.widget.Spinner
import android.widget.TextView
import org.tinysam.core.EverythingConfig
import org.tinysam.core.HierarchicalEverything
import org.tinysam.core.ImageException
import org.tinysam.core.PromptException
import org.tinysam.core.Prompts
import org.tinysam.core.RgbImage
import org.tinysam.core.RgbaImage
import org.tinysam.core.Size
import org.tinysam.core.bestMaskIndex
import org.tinysam.core.encodePrompts
import org.tinysam.core.preprocessPixels
import org.tinysam.core.uprightRgb
import java.util.concurrent.Executors

/**
 * Pick a photo, then tap (positive point), long-press (negative point) or drag (box); or run
 * everything mode. Masks are drawn over the photo; the status line shows each stage's time. Every stage
 * runs on the worker thread; the status line says what is running meanwhile.
 */
class MainActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()
    private val main = Handler(Looper.getMainLooper())
    private lateinit var status: TextView
    private lateinit var view: SegmentView
    private var bundle: ArtifactBundle? = null
    private var runtime: TinySamLiteRt? = null
    private var photo: RgbImage? = null
    private var embedding: FloatArray? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        status = TextView(this).apply { setPadding(16, 8, 16, 8) }
        view = SegmentView(this) { prompts -> segment(prompts) }
        val accelerator = Spinner(this).apply {
            adapter = ArrayAdapter(context, android.R.layout.simple_spinner_dropdown_item, Accelerator.values().map { it.name })
        }
        val bar = LinearLayout(this).apply {
            addView(button("Photo") { startActivityForResult(Intent(Intent.ACTION_GET_CONTENT).setType("image/*"), PICK) })
            addView(accelerator)
            addView(button("Everything") { everything() })
            addView(button("Clear") { view.clearPrompts() })
        }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            addView(bar)
            addView(status)
            addView(view, LinearLayout.LayoutParams(LinearLayout.LayoutParams.MATCH_PARENT, 0, 1f))
        })
        try {
            bundle = ArtifactBundle.load(assets)  // manifest format, target and hashes
        } catch (e: ArtifactException) {
            status.text = "Artifacts: ${e.message}"
            status.setTextColor(Color.RED)
            return
        }
        accelerator.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, v: View?, position: Int, id: Long) =
                load(Accelerator.values()[position])
            override fun onNothingSelected(parent: AdapterView<*>?) {}
        }
    }

    private fun button(text: String, action: () -> Unit) = Button(this).apply { this.text = text; setOnClickListener { action() } }

    private fun show(text: String) = main.post { status.text = text }

    private fun load(accelerator: Accelerator) = worker.execute {
        val start = System.nanoTime()
        runtime?.close()
        runtime = try {
            TinySamLiteRt(bundle!!, accelerator)
        } catch (e: Exception) {
            show("$accelerator unavailable: ${e.message}"); null
        } ?: return@execute
        embedding = null
        show("${bundle!!.precision} on $accelerator: loaded in ${ms(start)} ms")
        encode()
    }

    @Deprecated("Activity result API kept minimal for the sample")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        val uri = data?.data ?: return
        worker.execute {
            show("reading the photo…")
            val image = readPhoto(uri)
            if (image == null) { show("not a readable image"); return@execute }
            val bitmap = Bitmap.createBitmap(argb(image), image.width, image.height, Bitmap.Config.ARGB_8888)
            main.post { view.setPhoto(bitmap) }
            photo = image
            embedding = null
            encode()
        }
    }

    /**
     * The photo as the Python reference's load_image reads it: decoded in sRGB with straight alpha, then the
     * core's uprightRgb applies the EXIF orientation and flattens transparency onto white (both checked
     * against Pillow in the core's golden tests). BitmapFactory alone ignores the orientation.
     */
    private fun readPhoto(uri: Uri): RgbImage? {
        val options = BitmapFactory.Options().apply {
            inPremultiplied = false
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inPreferredColorSpace = ColorSpace.get(ColorSpace.Named.SRGB)
        }
        val bitmap = contentResolver.openInputStream(uri)?.use { BitmapFactory.decodeStream(it, null, options) } ?: return null
        val orientation = contentResolver.openInputStream(uri)?.use {
            ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        } ?: ExifInterface.ORIENTATION_NORMAL
        val pixels = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        return uprightRgb(RgbaImage.fromArgb(bitmap.width, bitmap.height, pixels), orientation)
    }

    /** Opaque packed ARGB of an RGB image, for showing the photo exactly as the model sees it. */
    private fun argb(image: RgbImage) = IntArray(image.width * image.height) {
        Color.rgb(image.pixels[3 * it].toInt() and 0xFF, image.pixels[3 * it + 1].toInt() and 0xFF,
                  image.pixels[3 * it + 2].toInt() and 0xFF)
    }

    /** Preprocess (the same glue as the Python pipeline: resize, mean-padded NHWC pixels) and encode once per photo. */
    private fun encode() {
        val image = photo ?: return
        val model = runtime ?: return
        var start = System.nanoTime()
        show("encoding the photo…")
        val input = try {
            preprocessPixels(image, bundle!!.imgSize)
        } catch (e: ImageException) {
            show(e.message ?: "image refused")
            return
        }
        val preprocessMs = ms(start)
        start = System.nanoTime()
        embedding = model.encode(input)
        show("preprocess ${preprocessMs} ms, encoder ${ms(start)} ms: tap, long-press or drag")
    }

    private fun segment(prompts: Prompts) = worker.execute {
        val image = photo ?: return@execute
        val model = runtime ?: return@execute
        val features = embedding ?: return@execute
        val size = Size(image.height, image.width)
        try {
            var start = System.nanoTime()
            show("decoding…")
            val decoderPrompts = encodePrompts(prompts, size, bundle!!.imgSize, model.maxTokens)  // exactly T tokens
            val output = model.decode(features, decoderPrompts)
            val decodeMs = ms(start)
            start = System.nanoTime()
            val best = bestMaskIndex(output.iou)
            val mask = output.mask(best, org.tinysam.core.resizedShape(size.height, size.width, bundle!!.imgSize), size, bundle!!.imgSize)
            val overlay = overlay(listOf(mask), size)
            val postMs = ms(start)
            main.post { view.setOverlay(overlay) }
            show("decoder $decodeMs ms, masks $postMs ms, predicted IoU %.3f".format(output.iou[best]))
        } catch (e: PromptException) {
            show(e.message ?: "invalid prompt")
        }
    }

    private fun everything() = worker.execute {
        val image = photo ?: return@execute
        val model = runtime ?: return@execute
        val features = embedding ?: return@execute
        val size = Size(image.height, image.width)
        val start = System.nanoTime()
        val generator = HierarchicalEverything(EverythingConfig(pointsPerBatch = model.everythingBatch),
                                               model.batchDecoder(features), model.everythingPoints, bundle!!.imgSize)
        val records = generator.generate(size) { done, planned -> show("everything: $done / $planned prompts") }
        val overlay = overlay(records.map { it.mask }, size)
        main.post { view.setOverlay(overlay) }
        show("everything: ${records.size} masks from ${generator.promptsPerRound.joinToString(" + ")} prompts in ${ms(start)} ms")
    }

    /** Masks as one ARGB bitmap: each mask's colour at half opacity, later masks on top. */
    private fun overlay(masks: List<BooleanArray>, size: Size): Bitmap {
        val argb = IntArray(size.height * size.width)
        for ((k, mask) in masks.withIndex()) {
            val hue = ((k * 0.618033988749895) % 1.0 * 360).toFloat()
            val color = Color.HSVToColor(128, floatArrayOf(hue, 0.8f, 1f))
            for (i in mask.indices) if (mask[i]) argb[i] = color
        }
        return Bitmap.createBitmap(argb, size.width, size.height, Bitmap.Config.ARGB_8888)
    }

    private fun ms(start: Long) = (System.nanoTime() - start) / 1_000_000

    override fun onDestroy() {
        worker.execute { runtime?.close() }
        worker.shutdown()
        super.onDestroy()
    }

    companion object { private const val PICK = 1 }
}
