package org.tinysam.app

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Matrix
import android.graphics.Paint
import android.graphics.RectF
import android.view.GestureDetector
import android.view.MotionEvent
import android.view.View
import org.tinysam.core.Prompts

/**
 * The photo fitted to the view with the masks over it (half-transparent fill, as the Python
 * overlay_masks draws them). Tap: positive point; long-press: negative point; drag: box.
 * Coordinates handed out are pixels of the photo.
 */
class SegmentView(context: Context, private val onPrompt: (Prompts) -> Unit) : View(context) {
    private var photo: Bitmap? = null
    private var overlay: Bitmap? = null
    private val points = ArrayList<Float>()
    private val labels = ArrayList<Float>()
    private var box: FloatArray? = null
    private var dragStart: FloatArray? = null
    private val toView = Matrix()
    private val toPhoto = Matrix()
    private val pointPaint = Paint(Paint.ANTI_ALIAS_FLAG)
    private val boxPaint = Paint().apply { style = Paint.Style.STROKE; strokeWidth = 4f; color = Color.GREEN }

    private val gestures = GestureDetector(context, object : GestureDetector.SimpleOnGestureListener() {
        override fun onDown(e: MotionEvent) = true
        override fun onSingleTapUp(e: MotionEvent): Boolean { addPoint(e, 1f); return true }
        override fun onLongPress(e: MotionEvent) { addPoint(e, 0f) }
    })

    fun setPhoto(bitmap: Bitmap) {
        photo = bitmap
        overlay = null
        clearPrompts()
        requestLayout()
        invalidate()
    }

    fun setOverlay(bitmap: Bitmap?) { overlay = bitmap; invalidate() }

    fun clearPrompts() { points.clear(); labels.clear(); box = null; overlay = null; invalidate() }

    private fun photoPoint(e: MotionEvent): FloatArray {
        val p = floatArrayOf(e.x, e.y)
        toPhoto.mapPoints(p)
        val bitmap = photo ?: return p
        return floatArrayOf(p[0].coerceIn(0f, bitmap.width.toFloat()), p[1].coerceIn(0f, bitmap.height.toFloat()))
    }

    private fun addPoint(e: MotionEvent, label: Float) {
        if (photo == null) return
        val p = photoPoint(e)
        points.add(p[0]); points.add(p[1]); labels.add(label)
        emit()
    }

    private fun emit() {
        // No tap is no points (None), as the CLI's parse_points gives; an empty list would mean "no points" to nobody.
        val tapped = labels.isNotEmpty()
        onPrompt(Prompts(if (tapped) points.toFloatArray() else null, if (tapped) labels.toFloatArray() else null, box?.copyOf()))
        invalidate()
    }

    override fun onTouchEvent(event: MotionEvent): Boolean {
        if (photo == null) return false
        gestures.onTouchEvent(event)
        val p = photoPoint(event)
        when (event.actionMasked) {
            MotionEvent.ACTION_DOWN -> dragStart = p
            MotionEvent.ACTION_MOVE -> dragStart?.let { s ->
                val drag = floatArrayOf(minOf(s[0], p[0]), minOf(s[1], p[1]), maxOf(s[0], p[0]), maxOf(s[1], p[1]))
                if (drag[2] - drag[0] > 8 && drag[3] - drag[1] > 8) { box = drag; invalidate() }
            }
            MotionEvent.ACTION_UP -> { if (box != null && dragStart != null && event.eventTime - event.downTime > 150) emit(); dragStart = null }
        }
        return true
    }

    override fun onDraw(canvas: Canvas) {
        val bitmap = photo ?: return
        val scale = minOf(width / bitmap.width.toFloat(), height / bitmap.height.toFloat())
        toView.setScale(scale, scale)
        toView.postTranslate((width - bitmap.width * scale) / 2, (height - bitmap.height * scale) / 2)
        toView.invert(toPhoto)
        canvas.drawBitmap(bitmap, toView, null)
        overlay?.let { canvas.drawBitmap(it, toView, null) }
        box?.let { b ->
            val r = RectF(b[0], b[1], b[2], b[3])
            toView.mapRect(r)
            canvas.drawRect(r, boxPaint)
        }
        for (i in labels.indices) {
            val p = floatArrayOf(points[2 * i], points[2 * i + 1])
            toView.mapPoints(p)
            pointPaint.color = if (labels[i] == 1f) Color.rgb(0, 220, 0) else Color.rgb(230, 0, 0)
            canvas.drawCircle(p[0], p[1], 14f, pointPaint)
        }
    }
}
